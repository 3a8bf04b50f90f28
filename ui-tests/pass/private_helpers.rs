use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Primes {
    candidate: u64,
    found: Vec<u64>,
}

#[skprocess(runs = 20)]
impl Primes {
    fn run(&mut self) {
        self.candidate += 1;
        if Self::is_prime(self.candidate) {
            self.record();
        }
    }

    fn result(&mut self) -> Vec<u64> {
        assert_eq!(self.results(), self.found.len());
        self.found.clone()
    }

    /// Named like a hook but longer: an ordinary helper, not a typo of `result`.
    fn results(&self) -> usize {
        self.found.len()
    }

    fn is_prime(n: u64) -> bool {
        n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)
    }

    fn record(&mut self) {
        self.found.push(self.candidate);
    }
}

#[skprocess::main]
fn main() {
    let primes = Primes { candidate: 0, found: Vec::new() }
        .start()
        .and_then(Handle::result)
        .expect("the child finishes");
    assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19]);
}
