//! Numbers and `bool` as shared fields: `+=`, `-=`, `*=`, `/=`, `%=` (and `&=`, `|=`, `^=`
//! for integers and `bool`) are each one write applied by the coordinator.
//!
//! Integer arithmetic is checked: an overflow or a division by zero is recorded as the
//! coordinator's last error and leaves the field unchanged, instead of panicking or wrapping.

use std::ops::{
    AddAssign, BitAndAssign, BitOrAssign, BitXorAssign, DivAssign, MulAssign, RemAssign, SubAssign,
};

use crate::protocol::share::FieldOp;
use crate::share::ApplyError;
use crate::share::field::{Field, SharedField, decode_args, get_or_set, unsupported};
use crate::share::layout::{Incr, Kind, Layout};

fn failed(what: &str) -> ApplyError {
    ApplyError::Failed(what.to_owned())
}

macro_rules! proxy_assign {
    ($t:ty: $($trait:ident $method:ident $op:ident),*) => {$(
        #[doc = concat!("One write on the coordinator: `", stringify!($method), "` on the field.")]
        impl $trait<$t> for Field<$t> {
            fn $method(&mut self, rhs: $t) {
                self.write(FieldOp::$op, &rhs)
            }
        }
    )*};
}

macro_rules! integers {
    ($($t:ty: $incr:ident),*) => {$(
        impl SharedField for $t {
            const LAYOUT: Layout = Layout::number::<$t>(Kind::Integer(Incr::$incr));

            fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
                let checked = match op {
                    FieldOp::Add => self.checked_add(decode_args(args)?).ok_or_else(|| failed("attempt to add with overflow"))?,
                    FieldOp::Sub => self.checked_sub(decode_args(args)?).ok_or_else(|| failed("attempt to subtract with overflow"))?,
                    FieldOp::Mul => self.checked_mul(decode_args(args)?).ok_or_else(|| failed("attempt to multiply with overflow"))?,
                    FieldOp::Div => self.checked_div(decode_args(args)?).ok_or_else(|| failed("attempt to divide by zero or with overflow"))?,
                    FieldOp::Rem => self.checked_rem(decode_args(args)?).ok_or_else(|| failed("attempt to calculate the remainder with a divisor of zero or with overflow"))?,
                    FieldOp::BitAnd => *self & decode_args::<$t>(args)?,
                    FieldOp::BitOr => *self | decode_args::<$t>(args)?,
                    FieldOp::BitXor => *self ^ decode_args::<$t>(args)?,
                    op => return get_or_set(self, op, args, reply),
                };
                *self = checked;
                Ok(())
            }
        }
        proxy_assign!($t: AddAssign add_assign Add, SubAssign sub_assign Sub, MulAssign mul_assign Mul,
            DivAssign div_assign Div, RemAssign rem_assign Rem, BitAndAssign bitand_assign BitAnd,
            BitOrAssign bitor_assign BitOr, BitXorAssign bitxor_assign BitXor);
    )*};
}

integers!(
    u8: Checked, u16: Checked, u32: Checked, u64: Unsigned64, u128: Checked,
    i8: Checked, i16: Checked, i32: Checked, i64: Signed64, i128: Checked
);

#[cfg(target_pointer_width = "64")]
integers!(usize: Unsigned64, isize: Signed64);
#[cfg(not(target_pointer_width = "64"))]
integers!(usize: Checked, isize: Checked);

macro_rules! floats {
    ($($t:ty),*) => {$(
        impl SharedField for $t {
            const LAYOUT: Layout = Layout::number::<$t>(Kind::Float);

            fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
                match op {
                    FieldOp::Add => *self += decode_args::<$t>(args)?,
                    FieldOp::Sub => *self -= decode_args::<$t>(args)?,
                    FieldOp::Mul => *self *= decode_args::<$t>(args)?,
                    FieldOp::Div => *self /= decode_args::<$t>(args)?,
                    FieldOp::Rem => *self %= decode_args::<$t>(args)?,
                    op => return get_or_set(self, op, args, reply),
                }
                Ok(())
            }
        }
        proxy_assign!($t: AddAssign add_assign Add, SubAssign sub_assign Sub, MulAssign mul_assign Mul,
            DivAssign div_assign Div, RemAssign rem_assign Rem);
    )*};
}

floats!(f32, f64);

impl SharedField for bool {
    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::BitAnd => *self &= decode_args::<bool>(args)?,
            FieldOp::BitOr => *self |= decode_args::<bool>(args)?,
            FieldOp::BitXor => *self ^= decode_args::<bool>(args)?,
            FieldOp::Get | FieldOp::Set => return get_or_set(self, op, args, reply),
            op => return Err(unsupported::<bool>(op)),
        }
        Ok(())
    }
}

proxy_assign!(bool: BitAndAssign bitand_assign BitAnd, BitOrAssign bitor_assign BitOr,
    BitXorAssign bitxor_assign BitXor);

impl SharedField for char {}
