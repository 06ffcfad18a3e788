"""Read what the lmr tools write: clip records and streams (lmr.record), LMDB/HDF5 shards and
shard sets (lmr.shards), checkpoints (lmr.checkpoint); lmr.torch adds a Dataset and the head as
an nn.Module (import it explicitly: it needs torch)."""
from .checkpoint import Checkpoint, head_forward, load_checkpoint
from .record import RecordError, read_stream
from .shards import Shard, ShardError, ShardSet

__version__ = "0.1.0"
__all__ = ["Checkpoint", "RecordError", "Shard", "ShardError", "ShardSet", "head_forward",
           "load_checkpoint", "read_stream"]
