//! The image seam's test, one for every platform: a function of this image is code beside
//! another one; data, the heap and addresses nowhere are not. (Each platform's file adds what
//! only it can check, such as another module's code on Windows.)

use crate::sys::image::is_code_beside;

#[inline(never)]
fn anchor() -> u8 {
    std::hint::black_box(1)
}

#[inline(never)]
fn other() -> u8 {
    std::hint::black_box(2)
}

static DATA: [u8; 64] = [0; 64];

/// An address of this image's code, for the platform files' own checks.
pub(super) fn anchor_address() -> usize {
    anchor as fn() -> u8 as usize
}

#[test]
fn a_function_of_the_same_image_is_code_and_data_or_nowhere_is_not() {
    let anchor = anchor_address();
    assert!(is_code_beside(anchor, other as fn() -> u8 as usize));
    assert!(is_code_beside(anchor, anchor));
    assert!(!is_code_beside(anchor, 16));
    assert!(!is_code_beside(anchor, usize::MAX - 16));
    let heap = Box::new(0u64);
    assert!(!is_code_beside(anchor, std::ptr::from_ref(&*heap) as usize));
    // Linux and Windows tell data from code by the segment or section; elsewhere (`dladdr`)
    // only the image is checked.
    if cfg!(any(target_os = "linux", windows)) {
        assert!(!is_code_beside(anchor, DATA.as_ptr() as usize));
    }
    let _ = &DATA;
}
