//! float32 math that the compiler keeps in vector lanes, and the run-time choice of the
//! widest lanes the CPU has.
//!
//! [`erf`] and [`expf`] are fdlibm's `erff` and `expf` (FreeBSD's `s_erff.c` and `e_expf.c`,
//! which the libm crate ports and burn-flex calls) with the same constants and the same float
//! operations in the same order, written without branches: every case is computed and the
//! right one selected. Rust never fuses a multiply and an add on its own, so the results are
//! libm's bit for bit, in SSE2 or AVX2 lanes alike.
//!
//! The constants are Sun Microsystems' (fdlibm, via FreeBSD): "Copyright (C) 1993 by Sun
//! Microsystems, Inc. All rights reserved. Developed at SunPro, a Sun Microsystems, Inc.
//! business. Permission to use, copy, modify, and distribute this software is freely granted,
//! provided that this notice is preserved."

use std::mem::MaybeUninit;

/// Elements a kernel processes together: small enough for its scratch arrays to stay in L1.
pub const BLOCK: usize = 512;

/// Runs `f` compiled for AVX2 (8 lanes) where the CPU has it, else for the baseline (SSE2 on
/// x86-64, 4 lanes). `f` must do the same float operations either way, which plain Rust does:
/// the choice changes speed, never results. Mark the closure `#[inline(always)]`: code is
/// compiled for AVX2 only where it is inlined into the AVX2 function here.
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2(f) };
    }
    f()
}

/// Runs `kernel` on every core, in the widest lanes, over matching pieces of `piece` elements
/// of `outputs` (written) and `inputs` (read), which all have one length (the last piece may be
/// shorter). Mark `kernel` `#[inline(always)]`, as for [`widest`].
pub fn par_pieces<const O: usize, const I: usize>(
    piece: usize,
    outputs: [&mut [f32]; O],
    inputs: [&[f32]; I],
    kernel: impl Fn([&mut [f32]; O], [&[f32]; I]) + Sync,
) {
    par_pieces_of(piece, outputs, inputs, kernel)
}

/// [`par_pieces`] into `O` new vectors as long as the inputs (of which there is at least one),
/// which `kernel` writes in full. Each task zeroes its own piece just before the kernel runs,
/// while the piece is in cache, rather than one core zeroing whole vectors beforehand (as
/// `vec![0.0; len]` does when the allocator reuses memory).
pub fn par_new<const O: usize, const I: usize>(
    piece: usize,
    inputs: [&[f32]; I],
    kernel: impl Fn([&mut [f32]; O], [&[f32]; I]) + Sync,
) -> [Vec<f32>; O] {
    let len = inputs.first().map_or(0, |i| i.len());
    let mut outputs: [Vec<f32>; O] = std::array::from_fn(|_| Vec::with_capacity(len));
    let spare = outputs
        .each_mut()
        .map(|o| &mut o.spare_capacity_mut()[..len]);
    par_pieces_of(
        piece,
        spare,
        inputs,
        #[inline(always)]
        |outs, ins| {
            let outs = outs.map(|o| {
                o.fill(MaybeUninit::new(0.0));
                // SAFETY: every element of `o` was just initialised.
                unsafe { &mut *(o as *mut [MaybeUninit<f32>] as *mut [f32]) }
            });
            kernel(outs, ins)
        },
    );
    for o in &mut outputs {
        // SAFETY: the pieces cover all `len` elements (`par_pieces_of`), each initialised.
        unsafe { o.set_len(len) };
    }
    outputs
}

/// A new vector of `rows` rows of `row_len` floats, each row zeroed and then written by
/// `f(index, row)` on some core, tasks of at least `min_rows` rows. As in [`par_new`], the task
/// that writes a row zeroes it, while it is in cache.
pub fn par_rows(
    rows: usize,
    row_len: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let len = rows
        .checked_mul(row_len)
        .expect("lanes::par_rows: size overflows");
    let mut out = Vec::with_capacity(len);
    if len > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(row_len)
            .with_min_len(min_rows.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                row.fill(MaybeUninit::new(0.0));
                // SAFETY: every element of `row` was just initialised.
                f(r, unsafe {
                    &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32])
                })
            });
    }
    // SAFETY: the rows cover all `len` elements, each initialised.
    unsafe { out.set_len(len) };
    out
}

/// [`par_pieces`] over outputs of any element type.
fn par_pieces_of<T: Send, const O: usize, const I: usize>(
    piece: usize,
    outputs: [&mut [T]; O],
    inputs: [&[f32]; I],
    kernel: impl Fn([&mut [T]; O], [&[f32]; I]) + Sync,
) {
    use rayon::prelude::*;
    let piece = piece.max(1);
    let len = outputs
        .first()
        .map(|o| o.len())
        .or(inputs.first().map(|i| i.len()))
        .unwrap_or(0);
    let lengths = outputs.iter().map(|o| o.len());
    assert!(
        lengths
            .chain(inputs.iter().map(|i| i.len()))
            .all(|l| l == len),
        "lanes::par_pieces: slices of different lengths"
    );
    let mut chunks = outputs.map(|o| o.chunks_mut(piece));
    let pieces: Vec<_> = (0..len.div_ceil(piece))
        .map(|p| {
            let outs = chunks.each_mut().map(|c| c.next().expect("one length"));
            let range = p * piece..((p + 1) * piece).min(len);
            (outs, inputs.map(|i| &i[range.clone()]))
        })
        .collect();
    pieces.into_par_iter().for_each(|(outs, ins)| {
        widest(
            #[inline(always)]
            || kernel(outs, ins),
        )
    });
}

/// `erf` of at most `BLOCK` values: every lane takes the near formulas (|u| < 1.25), then
/// the lanes beyond are gathered, computed together, and scattered back, so the costly tail
/// (two `exp`) runs only where it is needed and still in lanes.
#[inline(always)]
pub fn erf(u: &[f32], out: &mut [f32]) {
    debug_assert!(u.len() <= BLOCK && out.len() == u.len());
    for (out, &u) in out.iter_mut().zip(u) {
        *out = erf_near(u);
    }
    let mut at = [0u16; BLOCK];
    let mut far = [0f32; BLOCK];
    let mut count = 0;
    for (i, &u) in u.iter().enumerate() {
        at[count] = i as u16;
        far[count] = u;
        count += (magnitude_bits(u) >= ONE_AND_A_QUARTER) as usize;
    }
    for u in &mut far[..count] {
        *u = erf_far(*u);
    }
    for (&i, &value) in at[..count].iter().zip(&far[..count]) {
        out[i as usize] = value;
    }
}

#[inline(always)]
fn magnitude_bits(x: f32) -> u32 {
    x.to_bits() & 0x7fff_ffff
}

/// Bit patterns of |x| at which `erff` changes formula.
const TWO_TO_MINUS_28: u32 = 0x3180_0000;
const ERX_BOUND: u32 = 0x3f58_0000; // 0.84375
const ONE_AND_A_QUARTER: u32 = 0x3fa0_0000;
const ONE_OVER_0_35: u32 = 0x4036_db6d;
const SIX: u32 = 0x40c0_0000;

// The constants, as bit patterns: a decimal spelling could round to another float.
const ERX: f32 = f32::from_bits(0x3f58_560b);
const EFX8: f32 = f32::from_bits(0x3f83_75d4);
/// erf on [0, 0.84375]: numerator.
const PP: [f32; 5] = bits([
    0x3e03_75d4,
    0xbea6_6beb,
    0xbce9_528f,
    0xbbbd_1489,
    0xb7c7_56b1,
]);
/// and denominator.
const QQ: [f32; 5] = bits([
    0x3ecb_bbce,
    0x3d85_2a63,
    0x3ba6_8116,
    0x390a_ee49,
    0xb684_e21a,
]);
/// erf on [0.84375, 1.25]: numerator.
const PA: [f32; 7] = bits([
    0xbb1a_cdc6,
    0x3ed4_6805,
    0xbebe_9208,
    0x3ea2_fe54,
    0xbde3_1cc2,
    0x3d11_51b3,
    0xbb0d_f9c0,
]);
/// and denominator.
const QA: [f32; 6] = bits([
    0x3dd9_f331,
    0x3f0a_5785,
    0x3d93_1ae7,
    0x3e01_3307,
    0x3c5f_6e13,
    0x3c44_5aa3,
]);
/// erfc on [1.25, 1/0.35]: numerator.
const RA: [f32; 8] = bits([
    0xbc21_a093,
    0xbf31_a0b7,
    0xc128_f022,
    0xc279_8057,
    0xc322_658c,
    0xc338_9ae7,
    0xc2a2_932b,
    0xc11d_077e,
]);
/// and denominator.
const SA: [f32; 8] = bits([
    0x419d_35ce,
    0x4309_a863,
    0x43d9_486f,
    0x4421_58c9,
    0x43d6_810b,
    0x42d9_451f,
    0x40d2_3f7c,
    0xbd77_7f97,
]);
/// erfc on [1/0.35, 6]: numerator.
const RB: [f32; 7] = bits([
    0xbc21_a092,
    0xbf4c_9dd4,
    0xc18e_104b,
    0xc320_a2ea,
    0xc41f_6441,
    0xc480_230b,
    0xc3f1_c275,
]);
/// and denominator.
const SB: [f32; 7] = bits([
    0x41f2_b459,
    0x43a2_e571,
    0x44c0_1759,
    0x4547_fdbb,
    0x451f_90ce,
    0x43ed_43a7,
    0xc1b3_8712,
]);

const fn bits<const N: usize>(patterns: [u32; N]) -> [f32; N] {
    let mut floats = [0f32; N];
    let mut i = 0;
    while i < N {
        floats[i] = f32::from_bits(patterns[i]);
        i += 1;
    }
    floats
}

/// `c[0] + z * (c[1] + ... + z * c[n])`, nested as fdlibm writes its polynomials.
#[inline(always)]
fn horner(c: &[f32], z: f32) -> f32 {
    let (last, rest) = c.split_last().expect("coefficients");
    rest.iter().rev().fold(*last, |acc, &c| c + z * acc)
}

/// `1 + z * (c[0] + z * (...))`: fdlibm's denominators.
#[inline(always)]
fn one_plus(c: &[f32], z: f32) -> f32 {
    1.0 + z * horner(c, z)
}

/// `erff(x)` for |x| < 1.25; any value elsewhere.
#[inline(always)]
fn erf_near(x: f32) -> f32 {
    let bits = magnitude_bits(x);
    let z = x * x;
    let small = x + x * (horner(&PP, z) / one_plus(&QQ, z));
    let tiny = 0.125 * (8.0 * x + EFX8 * x);
    let s = f32::from_bits(bits) - 1.0;
    let mid = 1.0 - (1.0 - ERX - horner(&PA, s) / one_plus(&QA, s));
    let mid = with_sign_of(mid, x);
    let y = if bits < ERX_BOUND { small } else { mid };
    if bits < TWO_TO_MINUS_28 { tiny } else { y }
}

/// `erff(x)` for |x| >= 1.25, infinities and NaN included.
#[inline(always)]
fn erf_far(x: f32) -> f32 {
    let bits = magnitude_bits(x);
    let a = f32::from_bits(bits);
    let s = 1.0 / (a * a);
    let below = bits < ONE_OVER_0_35;
    let r = if below {
        horner(&RA, s)
    } else {
        horner(&RB, s)
    };
    let big_s = if below {
        one_plus(&SA, s)
    } else {
        one_plus(&SB, s)
    };
    let z = f32::from_bits(bits & 0xffff_e000);
    let erfc = expf(-z * z - 0.5625) * expf((z - a) * (z + a) + r / big_s) / a;
    let tail = with_sign_of(1.0 - erfc, x);
    // Beyond 6, erff is ±(1 - 2^-120), which rounds to ±1; at infinity and NaN it
    // evaluates `1 - 2 * sign + 1 / x`.
    let sign = (x.to_bits() >> 31) as f32;
    let beyond = if bits >= 0x7f80_0000 {
        1.0 - 2.0 * sign + 1.0 / x
    } else {
        with_sign_of(1.0 - f32::from_bits(0x0380_0000), x)
    };
    if bits < SIX { tail } else { beyond }
}

#[inline(always)]
fn with_sign_of(magnitude: f32, x: f32) -> f32 {
    f32::from_bits(magnitude.to_bits() | (x.to_bits() & 0x8000_0000))
}

const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
const P1: f32 = f32::from_bits(0x3e2a_aa8f);
const P2: f32 = f32::from_bits(0xbb35_5215);

/// `expf(x)` for -87 < x < 88 (erf's tail asks for -36.6 to 0.1), fdlibm's reduction
/// `x = k ln2 + r` with its three cases of `k` taken as selects.
#[inline(always)]
pub fn expf(x: f32) -> f32 {
    let bits = magnitude_bits(x);
    let negative = x.to_bits() >> 31 != 0;
    let far = (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32;
    let near = if negative { -1 } else { 1 };
    let k = if bits > 0x3f85_1592 {
        far
    } else if bits > 0x3eb1_7218 {
        near
    } else {
        0
    };
    let kf = k as f32;
    let hi = x - kf * LN2_HI;
    let lo = kf * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * P2);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    // scalbnf(y, k), exact here: the result is a normal float.
    let scaled = y * f32::from_bits((0x7f_i32.wrapping_add(k) as u32) << 23);
    if bits > 0x3900_0000 { scaled } else { 1.0 + x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_every_element_once_and_in_step() {
        let input: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let (mut doubled, mut sizes) = (vec![0f32; 1000], vec![0f32; 1000]);
        par_pieces(
            64,
            [&mut doubled, &mut sizes],
            [&input, &input],
            |[doubled, sizes], [x, y]| {
                let size = x.len() as f32;
                for ((d, s), (x, y)) in doubled
                    .iter_mut()
                    .zip(sizes.iter_mut())
                    .zip(x.iter().zip(y))
                {
                    *d += x + y;
                    *s = size;
                }
            },
        );
        let expected: Vec<f32> = (0..1000).map(|i| 2.0 * i as f32).collect();
        assert_eq!(doubled, expected);
        // 15 pieces of 64, then the 40 left.
        assert!(sizes[..960].iter().all(|&s| s == 64.0));
        assert!(sizes[960..].iter().all(|&s| s == 40.0));
    }

    #[test]
    fn new_outputs_are_written_in_full() {
        let input: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let [squares, sizes] = par_new(64, [&input], |[squares, sizes], [x]| {
            let size = x.len() as f32;
            for ((q, s), x) in squares.iter_mut().zip(sizes.iter_mut()).zip(x) {
                // Each piece starts zeroed.
                assert_eq!((*q, *s), (0.0, 0.0));
                *q = x * x;
                *s = size;
            }
        });
        let expected: Vec<f32> = (0..1000).map(|i| (i * i) as f32).collect();
        assert_eq!(squares, expected);
        assert!(sizes[..960].iter().all(|&s| s == 64.0));
        assert!(sizes[960..].iter().all(|&s| s == 40.0));
        let [empty] = par_new(64, [&[]], |[_], [_]| {});
        assert!(empty.is_empty());
    }

    #[test]
    fn new_rows_are_zeroed_then_written() {
        // Freed memory of the same size, full of NaN, which the allocator is likely to hand
        // back: fresh pages from the OS are zero already and would hide a missing fill.
        drop(std::hint::black_box(vec![f32::NAN; 700]));
        let out = par_rows(100, 7, 3, |r, row| {
            assert!(row.iter().all(|&v| v == 0.0));
            row[r % 7] = r as f32 + 1.0;
        });
        assert_eq!(out.len(), 700);
        for (r, row) in out.chunks(7).enumerate() {
            let want: Vec<f32> = (0..7)
                .map(|i| if i == r % 7 { r as f32 + 1.0 } else { 0.0 })
                .collect();
            assert_eq!(row, want);
        }
        assert!(par_rows(0, 7, 1, |_, _| {}).is_empty());
        assert!(par_rows(5, 0, 1, |_, _| {}).is_empty());
    }

    #[test]
    #[should_panic(expected = "slices of different lengths")]
    fn pieces_of_different_lengths_are_refused() {
        let mut out = vec![0f32; 10];
        par_pieces(4, [&mut out], [&[1.0; 9]], |_, _| {});
    }
}
