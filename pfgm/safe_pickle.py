"""Reading EDM / PFGM++ pickles as data, never as code.

The released networks (EDM's `network-snapshot-*.pkl`, a plain pickle; PFGM++'s `training-state-*.pt`, a
torch.save zip) hold `torch_utils.persistence` objects: the call `_reconstruct_persistent_obj(meta)` whose
meta carries the class's Python source, which the original loader `exec`s. Here a restricted unpickler
resolves only
  - torch's tensor, parameter and storage rebuild functions (replaced by ones of this module that build CPU
    tensors from the bytes, a nested legacy torch.save of one storage included),
  - plain containers (dict, OrderedDict, set, list, tuple), numpy scalars and dtypes, bytes,
  - torch.nn container modules and dnnlib's EasyDict (as data holders, never the torch classes),
  - `torch_utils.persistence._reconstruct_persistent_obj`, replaced by `Persistent`: the class name and the
    pickled state (init arguments, parameters, buffers, submodules); the embedded source is dropped unread.
Any other global is refused with UnsafePickle naming it; nothing found in the file is ever called.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import torch


class UnsafePickle(ValueError):
    """The file is not a checkpoint of the kinds read here (names the global or the defect)."""


class Persistent:
    """A torch_utils.persistence object as data: its class name and pickled __dict__ (`state`)."""

    def __init__(self, class_name, state):
        self.class_name, self.state = class_name, state

    def __repr__(self):
        return f"Persistent({self.class_name})"


class PlainModule:
    """A torch.nn container (ModuleDict, ModuleList, ...) as data: its class name and __dict__."""
    class_name = "Module"

    def __setstate__(self, state):
        self.state = state


class EasyDict(dict):
    """dnnlib's EasyDict as a plain dict."""

    def __setstate__(self, state):
        if state:
            self.update(state)


def _reconstruct(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str) \
            or not isinstance(meta.get("state"), dict):
        raise UnsafePickle("a torch_utils.persistence object without a class name and state")
    return Persistent(meta["class_name"], meta["state"])


_STORAGE_DTYPES = {f"{n}Storage": d for n, d in (
    ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}
_TORCH_DTYPES = {str(d).split(".")[1]: d for d in _STORAGE_DTYPES.values()}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _flat(storage):
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise UnsafePickle("a tensor whose storage is not stored data")
    return storage


def _rebuild_tensor(storage, offset, size, stride, *rest):
    flat = _flat(storage)
    return torch.as_strided(flat, tuple(size), tuple(stride), int(offset)).clone()


def _rebuild_parameter(data, *rest):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickle("a parameter without tensor data")
    return data


def _rebuild_from_type(func, new_type, args, state):
    if func not in (_rebuild_tensor, _rebuild_parameter) or new_type is not torch.Tensor:
        raise UnsafePickle("a tensor of an unknown type")
    return func(*args)


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise UnsafePickle("an unexpected _codecs.encode call")
    return text.encode(encoding)


def _np_dtype(name, *rest):
    dt = np.dtype(name) if isinstance(name, str) else None
    if dt is None or dt.kind not in "biufc":
        raise UnsafePickle(f"numpy dtype {name!r}")
    return dt


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise UnsafePickle("a numpy scalar without its bytes")
    return np.frombuffer(data, dtype)[0].item()


def _storage_bytes(data, dtype, numel):
    flat = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    size = torch.empty((), dtype=dtype).element_size() * numel
    if flat.numel() < size:
        raise UnsafePickle("truncated tensor data")
    return flat[:size].view(dtype)


def _load_from_bytes(data):
    """One storage written by torch's legacy (non-zip) torch.save, as EDM's plain pickles embed them:
    magic, protocol, system info, the storage's persistent id, the key list, then int64 numel + raw bytes."""
    f = io.BytesIO(data)
    for _ in range(3):
        _Unpickler(f).load()
    ids = []
    index = _Unpickler(f, lambda pid: ids.append(pid) or len(ids) - 1).load()
    keys = _Unpickler(f).load()
    if len(ids) != 1 or index != 0 or not isinstance(keys, list) or len(keys) != 1:
        raise UnsafePickle("an embedded storage of an unknown layout")
    _, storage_type, *_ = ids[0]
    (numel,) = struct.unpack("<q", f.read(8))
    return _storage_bytes(f.read(), storage_type.dtype, numel)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("__builtin__", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("_codecs", "encode"): _encode,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "scalar"): _np_scalar, ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): torch.Tensor, ("torch.nn.parameter", "Parameter"): torch.Tensor,
    ("torch", "Size"): tuple,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct,
    ("dnnlib.util", "EasyDict"): EasyDict,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, persistent=None):
        super().__init__(f)
        self._persistent = persistent

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        if module.startswith("torch.nn.modules.") and name.isidentifier():
            return type(name, (PlainModule,), {"class_name": name})
        raise UnsafePickle(f"the pickle asks for {module}.{name}, which is not read here (only tensors, plain "
                           "containers and torch_utils.persistence objects are)")

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafePickle("a persistent id outside a torch.save archive")
        return self._persistent(pid)


def _load_zip(path):
    """A torch.save zip archive: <name>/data.pkl, whose persistent ids name the files <name>/data/<key>."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise UnsafePickle("a zip file that is not a torch.save archive (no single <name>/data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in z.namelist() else "little"
        if byteorder != "little":
            raise UnsafePickle(f"a {byteorder}-endian archive")
        storages = {}

        def persistent_load(pid):
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                    and isinstance(pid[1], _StorageType)):
                raise UnsafePickle(f"an unknown persistent id {pid!r:.60}")
            _, kind, key, _location, numel = pid[:5]
            if key not in storages:
                storages[key] = _storage_bytes(z.read(f"{prefix}data/{key}"), kind.dtype, int(numel))
            return storages[key]

        return _Unpickler(io.BytesIO(z.read(pkl[0])), persistent_load).load()


def load(path):
    """The object pickled in `path` (a torch.save zip or a plain pickle), as data: tensors on the CPU,
    persistence objects as `Persistent`. UnsafePickle for anything else, a truncated or damaged file included."""
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _Unpickler(f).load()
    except UnsafePickle:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, struct.error, ValueError,
            TypeError, IndexError, AttributeError, RuntimeError) as e:
        raise UnsafePickle(f"truncated or not a checkpoint ({type(e).__name__}: {e})") from None
