"""parity.records: capture a target's stages and layers into a record directory, and
read back what B needs (inputs, layer tensors and samples, module inputs)."""

from parity.records.access import layer_sample, layer_tensor, load_module_inputs, load_record_inputs
from parity.records.flatten import strip_wrapper_prefix
from parity.records.format import Record, read_record
from parity.records.recorder import RecordResult, record
from parity.records.remote import FsspecStore
from parity.records.stats import sample_indices
from parity.records.store import OBJECT_SCHEMES, register_store

for _scheme in (*OBJECT_SCHEMES, "memory"):  # object storage through fsspec (parity[s3])
    register_store(_scheme, FsspecStore)

__all__ = [
    "Record",
    "RecordResult",
    "layer_sample",
    "layer_tensor",
    "load_module_inputs",
    "load_record_inputs",
    "read_record",
    "record",
    "sample_indices",
    "strip_wrapper_prefix",
]
