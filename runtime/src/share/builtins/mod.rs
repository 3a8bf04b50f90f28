//! What std types and skprocess's own types can do as fields of a shared value: the
//! coordinator side ([`SharedField`](crate::SharedField) implementations) and the proxy side
//! (methods of [`Field<F>`](crate::Field)) of each.

pub(crate) mod circuit;
pub(crate) mod collections;
pub(crate) mod numbers;
pub(crate) mod timer;

#[cfg(test)]
pub(crate) mod tests {
    //! A hand-written `Shared` type (what `#[shared]` generates) for the runtime's own tests.

    use serde::{Deserialize, Serialize};

    use crate::protocol::share::{FieldOp, Target};
    use crate::share::field::{Field, SharedField};
    use crate::share::link::Link;
    use crate::share::peer::apply;
    use crate::share::{ApplyError, Shared};
    use crate::transport::frame;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Pair {
        pub(crate) a: u64,
        pub(crate) b: Vec<u64>,
    }

    pub(crate) struct PairProxy {
        pub(crate) a: Field<u64>,
        pub(crate) b: Field<Vec<u64>>,
    }

    impl Shared for Pair {
        type Proxy = PairProxy;
        const FIELDS: &'static [&'static str] = &["a", "b"];

        fn proxy(link: &Link) -> PairProxy {
            PairProxy {
                a: Field::new(link, 0),
                b: Field::new(link, 1),
            }
        }

        fn apply_field(
            &mut self,
            index: u16,
            op: FieldOp,
            args: &[u8],
            reply: &mut Vec<u8>,
        ) -> Result<(), ApplyError> {
            match index {
                0 => self.a.apply(op, args, reply),
                1 => self.b.apply(op, args, reply),
                _ => Err(ApplyError::NoSuchTarget(index)),
            }
        }

        fn apply_method(
            &mut self,
            index: u16,
            _: &[u8],
            _: &mut Vec<u8>,
        ) -> Result<(), ApplyError> {
            Err(ApplyError::NoSuchTarget(index))
        }
    }

    /// Applies a field operation and decodes its reply.
    pub(crate) fn run<A: Serialize, R: serde::de::DeserializeOwned>(
        value: &mut Pair,
        index: u16,
        op: FieldOp,
        args: &A,
    ) -> Result<R, String> {
        let mut reply = Vec::new();
        let args = frame::encode(args).unwrap();
        let last = std::sync::Mutex::new(None);
        apply(value, Target::Field { index, op }, &args, &mut reply, &last)
            .map_err(|refusal| refusal.to_string())?;
        Ok(frame::decode_owned(&reply)
            .unwrap_or_else(|_| frame::decode_owned(&frame::encode(&()).unwrap()).unwrap()))
    }

    #[test]
    fn a_share_serves_threads_exactly_and_survives_stop_and_start() {
        let share = crate::Share::new(Pair::default()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mut share = share.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        share.a += 1;
                        share.b.push(i);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(share.a.get().unwrap(), 1000);
        assert_eq!(share.b.len().unwrap(), 1000);
        share.pause().unwrap();
        assert!(matches!(share.a.get(), Err(crate::Error::SharePaused)));
        share.a.set(5);
        share.resume().unwrap();
        assert_eq!(share.a.get().unwrap(), 5);
        share.b.remove(5000).unwrap_err();
        let recorded = share.last_error().unwrap().unwrap();
        assert!(recorded.contains("out of range"), "{recorded}");
        share.clear();
        assert_eq!(share.get().unwrap(), Pair::default());
    }

    #[test]
    fn numbers_and_vectors_apply_on_the_coordinator() {
        let mut pair = Pair::default();
        run::<_, ()>(&mut pair, 0, FieldOp::Add, &5u64).unwrap();
        run::<_, ()>(&mut pair, 0, FieldOp::Mul, &3u64).unwrap();
        run::<_, ()>(&mut pair, 0, FieldOp::Sub, &1u64).unwrap();
        assert_eq!(run::<_, u64>(&mut pair, 0, FieldOp::Get, &()).unwrap(), 14);
        let overflow = run::<_, ()>(&mut pair, 0, FieldOp::Sub, &100u64).unwrap_err();
        assert!(overflow.contains("overflow"), "{overflow}");
        let zero = run::<_, ()>(&mut pair, 0, FieldOp::Div, &0u64).unwrap_err();
        assert!(zero.contains("by zero"), "{zero}");
        for x in [1u64, 2, 3] {
            run::<_, ()>(&mut pair, 1, FieldOp::Push, &x).unwrap();
        }
        assert_eq!(
            run::<_, Option<u64>>(&mut pair, 1, FieldOp::Pop, &()).unwrap(),
            Some(3)
        );
        assert_eq!(run::<_, usize>(&mut pair, 1, FieldOp::Len, &()).unwrap(), 2);
        run::<_, ()>(&mut pair, 1, FieldOp::Insert, &(0usize, 9u64)).unwrap();
        assert_eq!(pair.b, [9, 1, 2]);
        let out_of_range = run::<_, u64>(&mut pair, 1, FieldOp::Remove, &7usize).unwrap_err();
        assert!(out_of_range.contains("out of range"), "{out_of_range}");
        let unsupported = run::<_, ()>(&mut pair, 1, FieldOp::AddTime, &()).unwrap_err();
        assert!(unsupported.contains("not supported"), "{unsupported}");
        assert!(unsupported.contains("`Pair.b`"), "{unsupported}");
    }
}
