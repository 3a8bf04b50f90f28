use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Divider {
    numerator: u64,
    denominator: u64,
}

#[skprocess]
impl Divider {
    fn run(&mut self) {}

    fn result(&mut self) -> Result<u64, String> {
        self.numerator
            .checked_div(self.denominator)
            .ok_or_else(|| "division by zero".to_owned())
    }
}

#[skprocess::main]
fn main() {
    let quotient = Divider { numerator: 84, denominator: 2 }
        .start()
        .and_then(Handle::result)
        .expect("84 / 2 succeeds");
    assert_eq!(quotient, 42);

    let error = Divider { numerator: 1, denominator: 0 }
        .start()
        .and_then(Handle::result)
        .expect_err("1 / 0 fails in the child");
    assert!(error.to_string().contains("division by zero"), "{error}");
}
