//! The public types can cross tasks and threads (no server needed).

use flowgate_redis::{
    AckToken, Acker, BuildError, Delivery, Fields, FieldsBuilder, Message, RedisStreamSource,
    SourceBuilder, SourceError, SourceStats, StopHandle,
};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}
fn assert_unpin<T: Unpin>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<AckToken>();
    assert_send_sync::<Acker>();
    assert_send_sync::<BuildError>();
    assert_send_sync::<Delivery>();
    assert_send_sync::<Fields>();
    assert_send_sync::<FieldsBuilder>();
    assert_send_sync::<Message>();
    assert_send_sync::<SourceBuilder>();
    assert_send_sync::<SourceError>();
    assert_send_sync::<SourceStats>();
    assert_send_sync::<StopHandle>();
    // The source is a stream one task polls: Send and Unpin.
    assert_send::<RedisStreamSource>();
    assert_unpin::<RedisStreamSource>();
}

#[test]
fn the_futures_of_the_source_are_send() {
    fn send<T: Send>(_: &T) {}
    let connect = RedisStreamSource::builder("redis://127.0.0.1:1/", "s", "g", "c").connect();
    send(&connect);
}
