use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::{Beat, Heartbeat};
use flowgate::prelude::*;
use futures_util::stream;

use crate::common::{collect_timed, timed};

const D: Duration = Duration::from_millis(100);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Heartbeat<stream::Iter<std::vec::IntoIter<u8>>>>();
    assert_send_sync::<Beat<u8>>();
}

#[tokio::test(start_paused = true)]
async fn ticks_only_in_silence() {
    let events = vec![(50, 'a'), (130, 'b'), (420, 'c'), (470, 'd')];
    let s = pin!(timed(events).heartbeat(D));
    let out = collect_timed(s).await;
    assert_eq!(
        out,
        vec![
            (50, Beat::Item('a')),
            (130, Beat::Item('b')),
            (230, Beat::Tick),
            (330, Beat::Tick),
            (420, Beat::Item('c')),
            (470, Beat::Item('d')),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ticks_from_first_poll_on_a_silent_stream() {
    let s = pin!(timed(vec![(1000, 1)]).heartbeat(Duration::from_millis(300)));
    let out = collect_timed(s).await;
    assert_eq!(
        out,
        vec![
            (300, Beat::Tick),
            (600, Beat::Tick),
            (900, Beat::Tick),
            (1000, Beat::Item(1))
        ]
    );
    assert_eq!(Beat::Item(3).into_item(), Some(3));
    assert!(Beat::<u8>::Tick.is_tick());
}
