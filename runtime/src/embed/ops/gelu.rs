//! A vectorised exact GELU for tract's plan of the model.
//!
//! tract's `GeluExact` computes `0.5·x·(1 + erf(x/√2))` with the Abramowitz–Stegun 7.1.28 polynomial for
//! erf; it has a vector kernel for AVX-512 only, and its scalar one raises to the 16th power with `powi`.
//! How fast that is depends on how tract was built: 0.53 ms per embedding in the `release` profile,
//! 1.6 ms with tract at opt-level `s` (BENCHMARKS.md). [`FastGelu`] computes the same formula with the
//! 16th power as four squarings, in a loop the compiler vectorises whatever tract's opt-level (AVX2 + FMA
//! chosen at run time on x86_64): 0.43 ms. [`replace_gelu`] swaps every f32 `GeluExact` node for it.
use tract_onnx::tract_core::as_op;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::GeluExact;

/// `0.5·x·(1 + erf(x/√2))` on f32, erf by Abramowitz–Stegun 7.1.28 (max error 3e-7), as tract's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastGelu;

plan_op!(FastGelu);

impl FastGelu {
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut t = input.into_tensor();
        {
            let mut view = t.try_as_plain_ram_mut()?;
            // Split across the plan's threads (`--threads`) when it has several; value by value, so
            // the split does not change the result.
            let xs = view.as_slice_mut::<f32>()?;
            let n = xs.len();
            tract_onnx::tract_core::tract_linalg::multithread::par_chunks_mut(
                xs,
                1,
                n,
                |_, chunk| {
                    gelu_in_place(chunk);
                    Ok(())
                },
            )?;
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for FastGelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        anyhow::ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Replaces every f32 `GeluExact` node of a decluttered `model` with [`FastGelu`]. Returns how many.
pub fn replace_gelu(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let is_gelu = node
            .op_as::<ElementWiseOp>()
            .is_some_and(|ew| ew.0.is::<GeluExact>() && ew.1.is_none());
        if !is_gelu || node.inputs.len() != 1 {
            continue;
        }
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
            continue;
        }
        model.node_mut(id).op = Box::new(FastGelu);
        replaced += 1;
    }
    Ok(replaced)
}

/// `x ← 0.5·x·(1 + erf(x/√2))` for every value.
pub fn gelu_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (which includes FMA), checked just above.
        unsafe { gelu_avx512(xs) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { gelu_avx2(xs) };
        return;
    }
    gelu_plain(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(xs: &mut [f32]) {
    gelu_plain(xs);
}

/// The same code on 16 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gelu_avx512(xs: &mut [f32]) {
    gelu_plain(xs);
}

#[inline(always)]
fn gelu_plain(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = gelu(*x);
    }
}

#[inline(always)]
#[allow(clippy::excessive_precision)]
fn gelu(x: f32) -> f32 {
    const A1: f32 = 0.0705230784;
    const A2: f32 = 0.0422820123;
    const A3: f32 = 0.0092705272;
    const A4: f32 = 0.0001520143;
    const A5: f32 = 0.0002765672;
    const A6: f32 = 0.0000430638;
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let y = A6 * a;
    let y = (A5 + y) * a;
    let y = (A4 + y) * a;
    let y = (A3 + y) * a;
    let y = (A2 + y) * a;
    let y = (A1 + y) * a;
    let p = y + 1.0;
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let p16 = p8 * p8;
    let erf = (1.0 - 1.0 / p16).copysign(z);
    (x * 0.5) * (erf + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series (|x| ≤ 3) or its asymptotic complement, in f64.
    fn erf_f64(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let t = 1.0 / (x * x);
            let c = (-x * x).exp() / (x.abs() * std::f64::consts::PI.sqrt())
                * (1.0 - 0.5 * t + 0.75 * t * t - 1.875 * t * t * t);
            return (1.0 - c).copysign(x);
        }
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    #[test]
    fn fast_gelu_is_the_exact_gelu_within_the_erf_polynomials_error() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect(); // −10 … 10
        let mut got = xs.clone();
        gelu_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let x64 = x as f64;
            let want = 0.5 * x64 * (1.0 + erf_f64(x64 / std::f64::consts::SQRT_2));
            // erf to 3e-7 absolute, scaled by 0.5·|x|, plus f32 rounding.
            let tol = 2e-7 * x64.abs() + 1e-6;
            assert!(
                (g as f64 - want).abs() <= tol,
                "gelu({x}) = {g}, want {want}"
            );
        }
        let mut special = [0.0f32, f32::INFINITY, -50.0];
        gelu_in_place(&mut special);
        assert_eq!(special, [0.0, f32::INFINITY, 0.0]);
    }

    #[test]
    fn plain_and_vector_gelu_agree_bit_for_bit_and_every_tail_length_is_done() {
        for len in 0..40 {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 - 20.0) * 0.37).collect();
            let mut a = xs.clone();
            let mut b = xs.clone();
            gelu_in_place(&mut a);
            gelu_plain(&mut b);
            assert_eq!(a, b, "length {len}");
            // On an AVX-512 CPU the AVX2 path is not the one taken: check it too.
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut c = xs.clone();
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                unsafe { gelu_avx2(&mut c) };
                assert_eq!(c, b, "avx2, length {len}");
            }
            assert!(xs.iter().zip(&b).all(|(x, b)| *b == gelu(*x)));
        }
    }
}
