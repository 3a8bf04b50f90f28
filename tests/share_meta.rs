//! The read/write metadata `#[shared]` computes at compile time, with exact sets for a sample
//! type (issue 8, item 1; BUG-21: in-place changes are writes).

use std::collections::HashMap;

use skprocess::prelude::*;
use skprocess::share::{SharedMeta, WHOLE_VALUE};

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Inventory {
    count: u64,
    items: Vec<String>,
    prices: HashMap<String, u64>,
    label: String,
    audit: u64,
}

fn describe(_: &Inventory) {}

#[shared]
impl Inventory {
    fn bump(&mut self) {
        self.count += 1;
    }

    fn add(&mut self, item: String) {
        self.items.push(item);
    }

    fn price(&mut self, item: String, price: u64) -> Option<u64> {
        self.prices.insert(item, price)
    }

    fn relabel(&mut self, label: String) {
        self.label = label;
    }

    fn total(&self) -> u64 {
        self.count + self.items.len() as u64
    }

    fn restock(&mut self, item: String) {
        self.add(item);
        self.bump();
        println!("now {}", self.audit);
    }

    fn inspect(&mut self) {
        describe(self);
    }

    fn noop(&mut self) {}
}

fn check(meta: &SharedMeta, name: &str, reads: &[&str], writes: &[&str], waits: bool) {
    let method = meta
        .method(name)
        .unwrap_or_else(|| panic!("no metadata for `{name}`"));
    assert_eq!(method.reads, reads, "reads of `{name}`");
    assert_eq!(method.writes, writes, "writes of `{name}`");
    assert_eq!(method.waits, waits, "waits of `{name}`");
}

#[test]
fn the_metadata_constant_has_exact_read_and_write_sets() {
    let meta = Inventory::SHARED_META;
    assert_eq!(meta.type_name, "Inventory");
    assert_eq!(meta.fields, ["count", "items", "prices", "label", "audit"]);
    assert_eq!(meta.methods.len(), 8);
    check(&meta, "bump", &["count"], &["count"], false);
    check(&meta, "add", &["items"], &["items"], false);
    check(&meta, "price", &["prices"], &["prices"], true);
    check(&meta, "relabel", &[], &["label"], false);
    check(&meta, "total", &["count", "items"], &[], true);
    check(
        &meta,
        "restock",
        &["audit", "count", "items"],
        &["count", "items"],
        false,
    );
    check(&meta, "inspect", &[WHOLE_VALUE], &[WHOLE_VALUE], false);
    check(&meta, "noop", &[], &[], false);
    assert!(meta.method("bump").unwrap().is_write);
    assert!(!meta.method("total").unwrap().is_write);
}
