//! Learning-rate schedule: linear warm-up, then cosine decay to a tenth of the peak.

/// The learning rate at optimiser step `step` (0-based) of `total`.
pub fn learning_rate(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup.min(step)) as f64 / span).min(1.0);
    let floor = peak * 0.1;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays() {
        let lr: Vec<f64> = (0..20).map(|s| learning_rate(1.0, s, 5, 20)).collect();
        assert!((lr[0] - 0.2).abs() < 1e-12);
        assert!((lr[4] - 1.0).abs() < 1e-12);
        assert!((lr[5] - 1.0).abs() < 1e-12);
        assert!(lr[5..].windows(2).all(|w| w[1] <= w[0]));
        assert!(lr[19] > 0.1 && lr[19] < 0.2);
        assert!((learning_rate(1.0, 0, 0, 1) - 1.0).abs() < 1e-12);
    }
}
