"""pytest (and nbval's kernels, which inherit this environment): no progress bars, so stored
notebook outputs and test output carry no timing noise."""
import os

os.environ.setdefault("TQDM_DISABLE", "1")
