//! What postcard cannot carry is said at the sender, naming the type and the likely serde
//! attribute (issue 16, Must have 6), instead of an opaque malformed message in the child:
//! `skip_serializing_if`, `flatten`, `untagged`, internally tagged enums and
//! `serde_json::Value`, through `start()`, `tell`, pool items and shares. The round-trip check
//! runs in debug builds; `flatten` fails to encode in every build.

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

const TEST_BOUND: Duration = Duration::from_secs(120);
const BOUND: Duration = Duration::from_secs(30);

/// Asserts `error` is [`Error::Encoding`] naming `type_name` and an attribute containing
/// `likely`.
#[track_caller]
fn assert_encoding(error: &Error, type_name: &str, likely: &str) {
    match error {
        Error::Encoding {
            type_name: named,
            likely: said,
            ..
        } => {
            assert!(named.ends_with(type_name), "{named}");
            assert!(said.contains(likely), "{said}");
            let text = error.to_string();
            assert!(text.contains(type_name) && text.contains(likely), "{text}");
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
}

/// The error of a call that must be refused.
#[track_caller]
fn refused<T>(result: Result<T, Error>) -> Error {
    match result {
        Ok(_) => panic!("accepted"),
        Err(error) => error,
    }
}

#[derive(Serialize, Deserialize)]
struct SkipsEmpty {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    count: u32,
}

#[skprocess]
impl SkipsEmpty {
    fn run(&mut self) {}
    fn result(&mut self) -> u32 {
        self.count
    }
}

#[cfg(debug_assertions)]
#[test]
fn a_skipped_field_in_a_state_is_refused_at_start() {
    let _bound = bound::within(TEST_BOUND);
    let state = SkipsEmpty {
        label: None,
        count: 7,
    };
    let error = refused(state.start());
    assert_encoding(&error, "SkipsEmpty", "skip_serializing_if");
}

#[derive(Serialize, Deserialize, Default)]
struct Extra {
    note: u32,
}

#[derive(Serialize, Deserialize)]
struct Flattens {
    #[serde(flatten)]
    extra: Extra,
}

#[skprocess]
impl Flattens {
    fn run(&mut self) {}
}

#[test]
fn a_flattened_field_in_a_state_is_refused_at_start() {
    let _bound = bound::within(TEST_BOUND);
    let state = Flattens {
        extra: Extra::default(),
    };
    let error = refused(state.start());
    assert_encoding(&error, "Flattens", "flatten");
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Command {
    Add { amount: u32 },
}

#[derive(Serialize, Deserialize)]
struct Listener;

#[skprocess(inbox = Command)]
impl Listener {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx.listen(Duration::from_millis(1));
    }
}

#[cfg(debug_assertions)]
#[test]
fn an_internally_tagged_message_is_refused_by_tell() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Listener.start().unwrap();
    let error = handle.tell(Command::Add { amount: 1 }).unwrap_err();
    assert_encoding(&error, "Command", "tag =");
    handle.result_timeout(BOUND).unwrap();
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(untagged)]
enum Loose {
    Number(u64),
    Text(String),
}

fn describe(item: Loose) -> String {
    format!("{item:?}")
}

#[cfg(debug_assertions)]
#[test]
fn an_untagged_pool_item_is_the_items_error() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    match pool.map(describe, [Loose::Number(1), Loose::Text("a".into())]) {
        Err(Error::Item { index: 0, error }) => assert_encoding(&error, "Loose", "untagged"),
        other => panic!("expected item 0 to fail, got {other:?}"),
    }
}

/// A document kept as JSON: postcard cannot read a `serde_json::Value` back.
#[derive(Serialize, Deserialize, Default)]
struct Document {
    raw: serde_json::Value,
}

impl skprocess::SharedField for Document {}

#[shared]
#[derive(Serialize, Deserialize, Default)]
struct Settings {
    document: Document,
}

#[cfg(debug_assertions)]
#[test]
fn a_json_value_in_a_share_is_refused_when_it_is_created() {
    let _bound = bound::within(TEST_BOUND);
    let error = refused(skprocess::Share::new(Settings::default()));
    assert_encoding(&error, "Settings", "serde_json::Value");
}
