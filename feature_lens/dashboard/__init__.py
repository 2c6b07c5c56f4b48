"""Feature-connectome dashboards: self-contained HTML (index, one page per feature, connectome
view) that opens from disk with no network, and the same views inline in Jupyter."""

from feature_lens.dashboard.data import Dataset, FeatureData, FeatureId, prepare_dataset
from feature_lens.dashboard.neighbours import Link, Neighbours
from feature_lens.dashboard.site import Dashboard, build_dashboards
from feature_lens.outputs import atomic_folder

__all__ = [
    "Dashboard",
    "Dataset",
    "FeatureData",
    "FeatureId",
    "Link",
    "Neighbours",
    "atomic_folder",
    "build_dashboards",
    "prepare_dataset",
]
