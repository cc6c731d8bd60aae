//! `f32::exp` over a slice, bit for bit the system's, in vector lanes where the system's is
//! known.
//!
//! Rust's `f32::exp` calls the C library's `expf`. burn-flex's GELU derivative calls it one
//! value at a time (about 5% of an MLP training step), and xp's derivative must give the same
//! bits. On x86-64 Linux with glibc (2.28 and later), a CPU with AVX2 and FMA runs glibc's
//! `__expf_fma`: the exp2f-table algorithm of ARM's optimized-routines, evaluated in double
//! precision with five fused multiply-adds. [`exp`] evaluates the same double-precision
//! operations in the same order, fused where glibc's build fuses them (read from its machine
//! code), so the compiler can keep eight values in flight; arguments glibc sends to its
//! special cases (|x| >= 88, infinities, NaN) take `f32::exp` itself.
//!
//! The lanes equal glibc 2.36's `expf` on every float32 (an ignored test compares them all:
//! `cargo test --release --lib every_float32_exp -- --ignored`, about a minute); glibc's
//! source has had this `expf` since 2.28, but only 2.36 was compared. Another C library, an
//! `expf` built otherwise, or glibc told to ignore the CPU's FMA (`GLIBC_TUNABLES`) could
//! round differently: once per process the lanes are compared with `f32::exp` on a million
//! arguments spread over the range, and where they differ, or the CPU lacks AVX2 or FMA, or
//! the C library is not glibc, `f32::exp` itself runs, as before. Such a check catches another
//! algorithm, not a rare rounding difference (an unfused reduction differs from glibc's on a
//! few arguments the check does not meet); every run stays deterministic on its machine
//! either way.

use std::sync::OnceLock;

/// `out[i] = x[i].exp()`, bit for bit.
pub fn exp(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "exp: slices of different lengths");
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    if in_lanes() {
        // SAFETY: `in_lanes` found AVX2 and FMA.
        unsafe { glibc_fma::exp(x, out) };
        return;
    }
    for (o, x) in out.iter_mut().zip(x) {
        *o = x.exp();
    }
}

/// Whether [`exp`] runs in lanes: the CPU has AVX2 and FMA, and on a spread of arguments the
/// lanes give what `f32::exp` gives.
pub fn in_lanes() -> bool {
    static CHECKED: OnceLock<bool> = OnceLock::new();
    *CHECKED.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let probe = probe();
            let mut ours = vec![0f32; probe.len()];
            // SAFETY: AVX2 and FMA, checked just above.
            unsafe { glibc_fma::exp(&probe, &mut ours) };
            return probe
                .iter()
                .zip(&ours)
                .all(|(x, o)| x.exp().to_bits() == o.to_bits());
        }
        false
    })
}

/// Every 2^12th float32 from -104 to 89 (both signs, subnormal results included), and the
/// arguments of the GELU derivative, `-x²/2`, for x on a fine grid of [-14, 14].
fn probe() -> Vec<f32> {
    let spread = (0..=u32::MAX >> 12)
        .map(|i| f32::from_bits(i << 12 | (i & 0xfff)))
        .filter(|x| (-104.0..89.0).contains(x));
    let gelu = (-140_000..=140_000).map(|i| {
        let x = i as f32 * 1e-4;
        -0.5 * x * x
    });
    spread.chain(gelu).collect()
}

#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
mod glibc_fma {
    /// `2^(i/32)` as the nearest double, less `i << 47` (the exponent bits that the reduced
    /// argument's integer part adds back): the 32 entries of glibc's `__exp2f_data.tab`.
    pub(super) const TABLE: [u64; 32] = [
        0x3ff0000000000000,
        0x3fefd9b0d3158574,
        0x3fefb5586cf9890f,
        0x3fef9301d0125b51,
        0x3fef72b83c7d517b,
        0x3fef54873168b9aa,
        0x3fef387a6e756238,
        0x3fef1e9df51fdee1,
        0x3fef06fe0a31b715,
        0x3feef1a7373aa9cb,
        0x3feedea64c123422,
        0x3feece086061892d,
        0x3feebfdad5362a27,
        0x3feeb42b569d4f82,
        0x3feeab07dd485429,
        0x3feea47eb03a5585,
        0x3feea09e667f3bcd,
        0x3fee9f75e8ec5f74,
        0x3feea11473eb0187,
        0x3feea589994cce13,
        0x3feeace5422aa0db,
        0x3feeb737b0cdc5e5,
        0x3feec49182a3f090,
        0x3feed503b23e255d,
        0x3feee89f995ad3ad,
        0x3feeff76f2fb5e47,
        0x3fef199bdd85529c,
        0x3fef3720dcef9069,
        0x3fef5818dcfba487,
        0x3fef7c97337b9b5f,
        0x3fefa4afa2a490da,
        0x3fefd0765b6e4540,
    ];
    /// 32 / ln 2, and the shift that rounds to an integer in the low bits of a double.
    const INV_LN2_N: f64 = f64::from_bits(0x40471547652b82fe);
    const SHIFT: f64 = f64::from_bits(0x4338000000000000);
    /// The cubic for `2^(r/32)`, highest power first.
    const C: [f64; 3] = [
        f64::from_bits(0x3ebc6af84b912394),
        f64::from_bits(0x3f2ebfce50fac4f3),
        f64::from_bits(0x3f962e42ff0c52d6),
    ];

    /// `exp(x)` for glibc's ordinary arguments (|x| < 88); see the module's comment.
    #[inline(always)]
    fn ordinary(x: f32) -> f32 {
        let xd = f64::from(x);
        let kd = INV_LN2_N.mul_add(xd, SHIFT);
        let ki = kd.to_bits();
        let kd = kd - SHIFT;
        let r = INV_LN2_N.mul_add(xd, -kd);
        let s = f64::from_bits(TABLE[(ki % 32) as usize].wrapping_add(ki << 47));
        let z = C[0].mul_add(r, C[1]);
        let r2 = r * r;
        let y = r.mul_add(C[2], 1.0);
        let y = z.mul_add(r2, y);
        (y * s) as f32
    }

    /// Whether glibc takes `x` to its special cases: the top 12 bits of |x| at least 88's.
    #[inline(always)]
    fn special(x: f32) -> bool {
        (x.to_bits() >> 20) & 0x7ff >= 0x42b
    }

    /// See [`super::exp`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp(x: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = ordinary(x);
        }
        for (o, &x) in out.iter_mut().zip(x) {
            if special(x) {
                *o = x.exp();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` as the public function runs it, and as the lanes compute it where the CPU can
    /// run them: else the self-check's fallback would hide a wrong lane.
    fn same_as_std(x: &[f32]) {
        let mut ours = vec![0f32; x.len()];
        exp(x, &mut ours);
        let mut runs = vec![("exp", ours)];
        #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let mut lanes = vec![0f32; x.len()];
            // SAFETY: AVX2 and FMA, checked just above.
            unsafe { glibc_fma::exp(x, &mut lanes) };
            runs.push(("lanes", lanes));
        }
        for (what, ours) in runs {
            for (x, o) in x.iter().zip(&ours) {
                let same = o.to_bits() == x.exp().to_bits() || (x.is_nan() && o.is_nan());
                assert!(
                    same,
                    "{what}: exp({x:e}) = {o:e}, f32::exp gives {:e}",
                    x.exp()
                );
            }
        }
    }

    #[test]
    fn is_std_exp_bit_for_bit() {
        if !in_lanes() {
            eprintln!("exp runs f32::exp itself here (no AVX2 and FMA, or not glibc's expf)");
        }
        same_as_std(&probe());
        let special = [
            0.0,
            -0.0,
            88.0,
            88.7,
            89.0,
            -88.0,
            -103.0,
            -103.5,
            -104.0,
            -200.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-40,
        ];
        same_as_std(&special);
    }

    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    #[test]
    fn table_entries_are_powers_of_two() {
        for (i, &t) in glibc_fma::TABLE.iter().enumerate() {
            let power = f64::from_bits(t + ((i as u64) << 47));
            let exact = 2f64.powf(i as f64 / 32.0);
            assert!(
                (power - exact).abs() <= exact * f64::EPSILON / 2.0,
                "entry {i}"
            );
        }
    }

    #[test]
    #[ignore = "every float32: about a minute in release"]
    fn every_float32_exp_is_std_bit_for_bit() {
        for start in (0..1u64 << 32).step_by(1 << 24) {
            let x: Vec<f32> = (start..start + (1 << 24))
                .map(|b| f32::from_bits(b as u32))
                .collect();
            same_as_std(&x);
        }
    }
}
