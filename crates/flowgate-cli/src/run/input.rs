//! The input side of `flowgate run`: the items ([`read_items`]) and the
//! command template that turns an item into a process's argv ([`Template`]).
//!
//! ```text
//!  stdin | --input FILE ──read_items──> Item { seq, text } ──Template::render──> argv
//! ```
//!
//! Template syntax (GNU parallel's and rush's names where they overlap):
//!
//! | placeholder | renders as                                                         |
//! |-------------|--------------------------------------------------------------------|
//! | `{}`        | the whole item                                                     |
//! | `{1}`, `{2}`… | the 1-based field, split on `--delimiter` or on whitespace runs; `""` when missing |
//! | `{#}`       | the item's seq (1-based position in the input)                     |
//! | `{{`, `}}`  | a literal `{` or `}`                                               |
//!
//! Anything else between braces (`{.}`, `{x}`, `{0}`), a lone `}` and an
//! unclosed `{` are refused when the template is parsed, so a typo never runs
//! thousands of wrong commands. When no argument holds a placeholder, the item
//! is appended as one last argument (`flowgate run -- echo` runs `echo ITEM`).

use std::error::Error;
use std::fmt::{self, Write as _};
use std::io;

use futures_core::Stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One input item. `seq` is its 1-based position in the input (GNU parallel's {#}).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The 1-based position of the item in the input.
    pub seq: u64,
    /// The item, without its line ending or NUL separator.
    pub text: String,
}

/// Items from `reader`: lines (a trailing "\n" or "\r\n" removed; a last line without newline counts; an empty input
/// yields nothing) or, with `null`, NUL-separated records (a trailing NUL does not make an empty last item).
///
/// Empty lines (or empty records between two NULs) are items too, with an
/// empty text: seqs follow the input's positions exactly, as the joblog and
/// `--resume` rely on. A lone `"\r"` not followed by `"\n"` is kept.
///
/// # Errors
///
/// Invalid UTF-8 is an error naming the item's seq (io::ErrorKind::InvalidData).
/// A read error of `reader` is passed on as it is. The stream ends after
/// its first error.
///
/// # Cancel safety
///
/// Dropping the stream between items loses nothing that was not yet read;
/// dropping it while an item is half read loses that item (its bytes were
/// consumed from `reader`, which the stream owns anyway).
pub fn read_items<R>(reader: R, null: bool) -> impl Stream<Item = io::Result<Item>> + Send + 'static
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    let state = ItemReader {
        reader,
        separator: if null { b'\0' } else { b'\n' },
        seq: 0,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next().await {
            Ok(Some(item)) => Some((Ok(item), Some(state))),
            Ok(None) => None,
            // `None` as the next state: the stream ends after an error.
            Err(err) => Some((Err(err), None)),
        }
    })
}

struct ItemReader<R> {
    reader: R,
    separator: u8,
    seq: u64,
}

impl<R: AsyncBufRead + Unpin> ItemReader<R> {
    async fn next(&mut self) -> io::Result<Option<Item>> {
        let mut buf = Vec::new();
        if self.reader.read_until(self.separator, &mut buf).await? == 0 {
            return Ok(None);
        }
        self.seq += 1;
        if buf.last() == Some(&self.separator) {
            buf.pop();
            // "\r\n" only: a "\r" without its "\n" is data.
            if self.separator == b'\n' && buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let seq = self.seq;
        match String::from_utf8(buf) {
            Ok(text) => Ok(Some(Item { seq, text })),
            Err(err) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "input item {seq} is not valid UTF-8 (at byte {})",
                    err.utf8_error().valid_up_to()
                ),
            )),
        }
    }
}

// ===== impl Template =====

/// A command template: `{}` is the whole item, `{1}`, `{2}`… the 1-based fields (split on `delimiter`, or on runs of
/// whitespace when None; a missing field renders as ""), `{#}` the seq, `{{` and `}}` literal braces.
/// If no argument contains a placeholder, the item is appended as one last argument (GNU parallel's rule).
///
/// Placeholders may appear anywhere, several in one argument, and in the
/// program too. Each argument renders to exactly one argument: an item with
/// spaces is never split into several (there is no shell in between).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// One entry per argument, program first.
    args: Vec<Vec<Piece>>,
    /// No argument holds a placeholder: the item is appended.
    append: bool,
    /// Some argument uses `{N}`: the item is split into fields.
    fields: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Whole,
    Field(usize),
    Seq,
}

/// Why a command or key template was refused.
#[derive(Debug)]
pub enum TemplateError {
    /// No program (an empty command), or an empty `--key` template.
    Empty,
    /// An argument has a `{` without its `}`.
    Unclosed {
        /// The argument, as given.
        arg: String,
    },
    /// An argument has a placeholder that is not one of `{}`, `{#}`, `{N}`
    /// (N ≥ 1), or a lone `}` (`placeholder` is then `"}"`).
    BadPlaceholder {
        /// The argument, as given.
        arg: String,
        /// The placeholder, braces included.
        placeholder: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the template is empty: nothing to run"),
            Self::Unclosed { arg } => {
                write!(f, "unclosed {{ in {arg:?} (write {{{{ for a literal {{)")
            }
            Self::BadPlaceholder { arg, placeholder } if placeholder == "}" => {
                write!(f, "a lone }} in {arg:?} (write }}}} for a literal }})")
            }
            Self::BadPlaceholder { arg, placeholder } => write!(
                f,
                "unknown placeholder {placeholder} in {arg:?} (use {{}}, {{#}} or {{1}}, {{2}}…; \
                 write {{{{ and }}}} for literal braces)"
            ),
        }
    }
}

impl Error for TemplateError {}

impl Template {
    /// Parses a command template; `args[0]` is the program.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Empty`] when `args` is empty; [`TemplateError::Unclosed`]
    /// and [`TemplateError::BadPlaceholder`] name the first bad argument.
    pub fn parse(args: &[String]) -> Result<Template, TemplateError> {
        if args.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parsed = Vec::with_capacity(args.len());
        let mut any_placeholder = false;
        for arg in args {
            let (pieces, has) = parse_arg(arg)?;
            any_placeholder |= has;
            parsed.push(pieces);
        }
        Ok(Self::from_parts(parsed, !any_placeholder))
    }

    /// A stage's template (`--then`, `--on-error`): like [`Template::parse`],
    /// but the item is never appended — a stage reads the previous stage's
    /// output on stdin, so `--then 'tr a-z A-Z'` runs as written.
    ///
    /// # Errors
    ///
    /// As [`Template::parse`].
    pub fn parse_stage(args: &[String]) -> Result<Template, TemplateError> {
        let mut template = Self::parse(args)?;
        template.append = false;
        Ok(template)
    }

    /// The same for a one-string template (used by --key '{1}'): never appends the item.
    ///
    /// A template without placeholders is a constant (every item gets the
    /// same key).
    ///
    /// # Errors
    ///
    /// [`TemplateError::Empty`] for `""`; otherwise as [`Template::parse`].
    pub fn parse_key(template: &str) -> Result<Template, TemplateError> {
        if template.is_empty() {
            return Err(TemplateError::Empty);
        }
        let (pieces, _) = parse_arg(template)?;
        Ok(Self::from_parts(vec![pieces], false))
    }

    fn from_parts(args: Vec<Vec<Piece>>, append: bool) -> Self {
        let fields = args.iter().flatten().any(|p| matches!(p, Piece::Field(_)));
        Self {
            args,
            append,
            fields,
        }
    }

    /// Whether the item is appended as a last argument (no argument holds a
    /// placeholder; never for a [`Template::parse_key`] template).
    pub fn appends_item(&self) -> bool {
        self.append
    }

    /// The argv for `item`, program first.
    ///
    /// Fields are split on `delimiter` (an empty delimiter: the whole item
    /// is field 1), or on runs of whitespace when `None` (leading and
    /// trailing whitespace make no empty field).
    pub fn render(&self, item: &Item, delimiter: Option<&str>) -> Vec<String> {
        let fields = if self.fields {
            split_fields(&item.text, delimiter)
        } else {
            Vec::new()
        };
        let mut argv = Vec::with_capacity(self.args.len() + usize::from(self.append));
        argv.extend(
            self.args
                .iter()
                .map(|pieces| render_arg(pieces, item, &fields)),
        );
        if self.append {
            argv.push(item.text.clone());
        }
        argv
    }

    /// The key for `item`, for [`Template::parse_key`] templates (for a
    /// [`Template::parse`] template: its argv joined by spaces).
    pub fn render_key(&self, item: &Item, delimiter: Option<&str>) -> String {
        match self.render(item, delimiter).as_mut_slice() {
            [one] => std::mem::take(one),
            argv => argv.join(" "),
        }
    }
}

/// One argument's pieces, and whether it holds a placeholder.
fn parse_arg(arg: &str) -> Result<(Vec<Piece>, bool), TemplateError> {
    let bad = |placeholder: &str| TemplateError::BadPlaceholder {
        arg: arg.to_owned(),
        placeholder: placeholder.to_owned(),
    };
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut has_placeholder = false;
    let mut rest = arg;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let brace = &rest[at..at + 1];
        let after = &rest[at + 1..];
        if let Some(after_double) = after.strip_prefix(brace) {
            literal.push_str(brace);
            rest = after_double;
            continue;
        }
        if brace == "}" {
            return Err(bad("}"));
        }
        let Some(end) = after.find('}') else {
            return Err(TemplateError::Unclosed {
                arg: arg.to_owned(),
            });
        };
        let name = &after[..end];
        let piece = match name {
            "" => Piece::Whole,
            "#" => Piece::Seq,
            digits if digits.bytes().all(|b| b.is_ascii_digit()) => match digits.parse::<usize>() {
                Ok(n) if n >= 1 => Piece::Field(n),
                _ => return Err(bad(&rest[at..at + end + 2])),
            },
            _ => return Err(bad(&rest[at..at + end + 2])),
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        has_placeholder = true;
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok((pieces, has_placeholder))
}

fn split_fields<'a>(text: &'a str, delimiter: Option<&str>) -> Vec<&'a str> {
    match delimiter {
        None => text.split_whitespace().collect(),
        Some("") => vec![text],
        Some(delimiter) => text.split(delimiter).collect(),
    }
}

fn render_arg(pieces: &[Piece], item: &Item, fields: &[&str]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Whole => out.push_str(&item.text),
            Piece::Field(n) => out.push_str(fields.get(n - 1).copied().unwrap_or("")),
            Piece::Seq => {
                let _ = write!(out, "{}", item.seq);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn item(seq: u64, text: &str) -> Item {
        Item {
            seq,
            text: text.to_owned(),
        }
    }

    fn render(template: &[&str], text: &str, delimiter: Option<&str>) -> Vec<String> {
        Template::parse(&args(template))
            .unwrap()
            .render(&item(7, text), delimiter)
    }

    async fn read(input: &'static [u8], null: bool) -> Vec<io::Result<Item>> {
        read_items(input, null).collect().await
    }

    async fn texts(input: &'static [u8], null: bool) -> Vec<(u64, String)> {
        read(input, null)
            .await
            .into_iter()
            .map(|r| {
                let item = r.unwrap();
                (item.seq, item.text)
            })
            .collect()
    }

    fn owned(list: &[(u64, &str)]) -> Vec<(u64, String)> {
        list.iter().map(|(s, t)| (*s, (*t).to_owned())).collect()
    }

    // ----- read_items -----

    #[tokio::test]
    async fn lines_are_items_numbered_from_one() {
        let got = texts(b"a\nb b\n\nc\n", false).await;
        assert_eq!(got, owned(&[(1, "a"), (2, "b b"), (3, ""), (4, "c")]));
    }

    #[tokio::test]
    async fn crlf_is_removed_but_a_lone_cr_is_kept() {
        let got = texts(b"a\r\nb\rc\r\nd\r", false).await;
        assert_eq!(got, owned(&[(1, "a"), (2, "b\rc"), (3, "d\r")]));
    }

    #[tokio::test]
    async fn a_last_line_without_newline_counts() {
        assert_eq!(texts(b"a\nb", false).await, owned(&[(1, "a"), (2, "b")]));
    }

    #[tokio::test]
    async fn an_empty_input_yields_nothing() {
        assert!(read(b"", false).await.is_empty());
        assert!(read(b"", true).await.is_empty());
    }

    #[tokio::test]
    async fn a_lone_newline_is_one_empty_item() {
        assert_eq!(texts(b"\n", false).await, owned(&[(1, "")]));
    }

    #[tokio::test]
    async fn nul_separated_with_and_without_trailing_nul() {
        let want = owned(&[(1, "a b"), (2, "c\nd"), (3, "")]);
        assert_eq!(texts(b"a b\0c\nd\0\0", true).await, want);
        assert_eq!(
            texts(b"a b\0c\nd\0", true).await,
            owned(&[(1, "a b"), (2, "c\nd")])
        );
        assert_eq!(
            texts(b"a b\0c\nd", true).await,
            owned(&[(1, "a b"), (2, "c\nd")])
        );
        // With -0, "\r\n" is data.
        assert_eq!(texts(b"x\r\n\0", true).await, owned(&[(1, "x\r\n")]));
    }

    #[tokio::test]
    async fn invalid_utf8_names_the_seq_and_ends_the_stream() {
        let got = read(b"ok\nbad \xff here\nnever\n", false).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), &item(1, "ok"));
        let err = got[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("item 2"), "{err}");

        let got = read(b"\xc3\0", true).await;
        let err = got[0].as_ref().unwrap_err();
        assert!(err.to_string().contains("item 1"), "{err}");
    }

    #[test]
    fn the_stream_is_send_and_static() {
        fn check<T: Send + 'static>(_: &T) {}
        check(&read_items(tokio::io::empty(), false));
    }

    // ----- Template -----

    #[test]
    fn whole_item_anywhere_and_several_times() {
        assert_eq!(
            render(&["echo", "x{}y", "{}{}"], "a b", None),
            args(&["echo", "xa by", "a ba b"])
        );
        assert_eq!(render(&["{}", "-v"], "ls", None), args(&["ls", "-v"]));
    }

    #[test]
    fn fields_split_on_whitespace_runs() {
        assert_eq!(
            render(&["cmd", "{2}", "{1}", "{3}"], "  one \t two   ", None),
            args(&["cmd", "two", "one", ""])
        );
    }

    #[test]
    fn missing_fields_render_empty() {
        assert_eq!(
            render(&["cmd", "<{5}>", "{1}"], "only", None),
            args(&["cmd", "<>", "only"])
        );
        assert_eq!(render(&["cmd", "{1}"], "", None), args(&["cmd", ""]));
    }

    #[test]
    fn custom_delimiter_keeps_empty_fields() {
        assert_eq!(
            render(&["cmd", "{1}", "{2}", "{3}"], "a,,c d", Some(",")),
            args(&["cmd", "a", "", "c d"])
        );
        assert_eq!(
            render(&["cmd", "{2}"], "a::b::c", Some("::")),
            args(&["cmd", "b"])
        );
        // An empty delimiter does not split.
        assert_eq!(
            render(&["cmd", "{1}", "{2}"], "a b", Some("")),
            args(&["cmd", "a b", ""])
        );
    }

    #[test]
    fn seq_placeholder() {
        assert_eq!(
            render(&["cmd", "job-{#}", "{}"], "x", None),
            args(&["cmd", "job-7", "x"])
        );
    }

    #[test]
    fn doubled_braces_are_literal_and_not_placeholders() {
        // No placeholder: the item is appended.
        let template = Template::parse(&args(&["awk", "{{print $1}}"])).unwrap();
        assert!(template.appends_item());
        assert_eq!(
            template.render(&item(1, "f.txt"), None),
            args(&["awk", "{print $1}", "f.txt"])
        );
        assert_eq!(
            render(&["echo", "{{{}}}", "}}{{"], "x", None),
            args(&["echo", "{x}", "}{"])
        );
    }

    #[test]
    fn a_stage_never_appends_the_item() {
        let args = vec!["tr".to_string(), "a-z".to_string(), "A-Z".to_string()];
        let stage = Template::parse_stage(&args).unwrap();
        assert!(!stage.appends_item());
        let item = Item {
            seq: 1,
            text: "x".into(),
        };
        assert_eq!(stage.render(&item, None), args);
    }

    #[test]
    fn no_placeholder_appends_the_item() {
        let template = Template::parse(&args(&["echo", "-n"])).unwrap();
        assert!(template.appends_item());
        assert_eq!(
            template.render(&item(1, "a b"), None),
            args(&["echo", "-n", "a b"])
        );
        assert_eq!(render(&["true"], "x", None), args(&["true", "x"]));
        assert!(
            !Template::parse(&args(&["echo", "{#}"]))
                .unwrap()
                .appends_item()
        );
    }

    #[test]
    fn empty_arguments_are_kept() {
        assert_eq!(
            render(&["cmd", "", "{}"], "x", None),
            args(&["cmd", "", "x"])
        );
    }

    #[test]
    fn empty_command_is_refused() {
        assert!(matches!(Template::parse(&[]), Err(TemplateError::Empty)));
        assert!(matches!(Template::parse_key(""), Err(TemplateError::Empty)));
    }

    #[test]
    fn unclosed_brace_is_refused() {
        for bad in ["{", "a{1", "x{}{", "{#"] {
            match Template::parse(&args(&["echo", bad])) {
                Err(TemplateError::Unclosed { arg }) => assert_eq!(arg, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let err = Template::parse_key("{1").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unclosed { in "{1" (write {{ for a literal {)"#
        );
    }

    #[test]
    fn bad_placeholders_are_refused() {
        for (bad, placeholder) in [
            ("{.}", "{.}"),
            ("a{0}b", "{0}"),
            ("{x}", "{x}"),
            ("{ }", "{ }"),
            ("{-1}", "{-1}"),
            ("{1 }", "{1 }"),
            ("{99999999999999999999999}", "{99999999999999999999999}"),
            ("{print $1}", "{print $1}"),
            ("a}b", "}"),
            ("{}}", "}"),
        ] {
            match Template::parse(&args(&["echo", bad])) {
                Err(TemplateError::BadPlaceholder {
                    arg,
                    placeholder: p,
                }) => {
                    assert_eq!((arg.as_str(), p.as_str()), (bad, placeholder));
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        // The program is checked too.
        assert!(Template::parse(&args(&["{x}"])).is_err());
        let err = Template::parse(&args(&["echo", "{.}"])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown placeholder {.} in \"{.}\""),
            "{err}"
        );
        let err = Template::parse(&args(&["echo", "a}"])).unwrap_err();
        assert!(err.to_string().starts_with("a lone } in \"a}\""), "{err}");
    }

    #[test]
    fn key_templates_never_append() {
        let key = Template::parse_key("{1}").unwrap();
        assert!(!key.appends_item());
        assert_eq!(key.render_key(&item(3, "host1 /path"), None), "host1");
        assert_eq!(key.render_key(&item(3, "a:b"), Some(":")), "a");
        let constant = Template::parse_key("all").unwrap();
        assert!(!constant.appends_item());
        assert_eq!(constant.render_key(&item(1, "x"), None), "all");
        assert_eq!(
            Template::parse_key("{2}-{#}")
                .unwrap()
                .render_key(&item(4, "a b"), None),
            "b-4"
        );
    }

    #[test]
    fn render_key_of_a_command_template_joins_the_argv() {
        let template = Template::parse(&args(&["echo", "x"])).unwrap();
        assert_eq!(template.render_key(&item(1, "y"), None), "echo x y");
    }
}
