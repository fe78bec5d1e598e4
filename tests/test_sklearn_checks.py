"""scikit-learn's own estimator checks on InvariantAutoencoder (a small, fast configuration)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mdcrl import InvariantAutoencoder

SKIPPED = {
    # Non-numeric X gets mdcrl's DataInputError (a ValueError naming the fix), like every bad input
    # of the library and the command line, rather than numpy's TypeError.
    "check_dtype_object": "non-numeric X raises DataInputError (a ValueError), not TypeError",
}


@parametrize_with_checks(
    [InvariantAutoencoder(max_epochs=2, restarts=1, batch_size=64, top_k=2)],
    expected_failed_checks=lambda estimator: SKIPPED,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
