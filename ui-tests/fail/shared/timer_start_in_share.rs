use skprocess::prelude::*;
use skprocess::Sktimer;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Stats {
    timer: Sktimer,
}

fn measure(share: &Share<Stats>) {
    // Measuring is local: a shared timer takes samples with `add_time`.
    share.timer.start();
}

fn main() {}
