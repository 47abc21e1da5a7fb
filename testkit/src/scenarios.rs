//! Runs a group of scenarios against one shared setup (one Envoy), reporting
//! every scenario instead of stopping at the first failure.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// One named scenario over a shared context.
pub type Scenario<C> = (&'static str, fn(&C));

/// Runs every scenario in order; panics at the end naming the failed ones
/// (each failure's own panic message is printed as it happens).
pub fn run<C>(context: &C, scenarios: &[Scenario<C>]) {
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        match catch_unwind(AssertUnwindSafe(|| scenario(context))) {
            Ok(()) => eprintln!("scenario {name} ... ok"),
            Err(_) => {
                eprintln!("scenario {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed:\n  {}",
        failed.len(),
        scenarios.len(),
        failed.join("\n  ")
    );
}

/// `scenarios!(&context, [scenario_fn, ...])`: runs the functions as named
/// scenarios (each name is the function's name).
#[macro_export]
macro_rules! scenarios {
    ($context:expr, [$($scenario:ident),* $(,)?]) => {
        $crate::scenarios::run(
            $context,
            &[$((stringify!($scenario), $scenario as fn(&_))),*],
        )
    };
}
