"""Shared by the Hugging Face kinds: model source, offline-friendly errors, device/dtype, random init."""

from __future__ import annotations

import dataclasses
import logging
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from megdecode.devices import resolve_device
from megdecode.latents.registry import LatentKind, parse_options
from megdecode.latents.stimuli import Stimuli

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16")
ARCHITECTURES = {
    "huggingface_vision": ("dinov2", "clip_vision"),
    "huggingface_text": ("clip_text",),
    "diffusers_vae": ("autoencoder_kl",),
}
ARCHITECTURE_LABELS = {
    "dinov2": "DINOv2",
    "clip_vision": "CLIP-Vision",
    "clip_text": "CLIP-Text",
    "autoencoder_kl": "AutoKL",
}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class ModelNotAvailableError(OSError):
    """A model that cannot be loaded (typically: offline and not in the local cache)."""


@dataclass
class RandomInit:
    """A small random-init model built by the workflow (``build_random_backbone``) instead of a Hub id.

    ``architecture``: ``auto`` (the kind's natural model: dinov2 / clip_text / autoencoder_kl), ``dinov2``,
    ``clip_vision``, ``clip_text`` or ``autoencoder_kl``. For ``autoencoder_kl``, ``hidden_size`` is the
    channel width of every block and ``num_hidden_layers`` the number of blocks (downsampling
    ``2**(num_hidden_layers - 1)``).
    """

    architecture: str = "auto"
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    projection_dim: int = 16
    image_size: int = 32
    patch_size: int = 8
    latent_channels: int = 4
    max_length: int = 77
    seed: int = 0


def resolve_architecture(kind: str, random_init: RandomInit) -> str:
    """The concrete architecture of ``random_init`` for ``kind`` (error if it does not fit the kind)."""
    allowed = ARCHITECTURES[kind]
    arch = allowed[0] if random_init.architecture == "auto" else random_init.architecture
    if arch not in allowed:
        raise ValueError(
            f"random_init.architecture {arch!r} does not fit kind {kind!r}; use one of {allowed}"
        )
    return arch


def resolve_source(
    model: str, revision: str, weights_dir: str | Path | None, where: str
) -> tuple[str, str | None]:
    """(what to pass to from_pretrained, revision or None for local folders)."""
    if weights_dir is not None:
        return str(weights_dir), None
    if not model:
        raise ValueError(f"{where}: set options.model (a Hub id or a local directory) or options.random_init")
    path = Path(model)
    if path.exists():
        if not path.is_dir():
            raise ValueError(
                f"{where}: options.model {model!r} is a file; point it to a save_pretrained directory"
            )
        return str(path), None
    if model.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"{where}: local model directory {model!r} does not exist")
    similar = similar_local_folder(model)
    if similar is not None:
        log.warning("%s: %s", where, _hub_or_folder_note(model, similar))
    return model, revision


def similar_local_folder(model: str) -> Path | None:
    """A local folder whose path resembles ``model`` (a path written without ``./`` reads as a Hub id)."""
    import difflib

    path = Path(model)
    parent = path.parent
    if not parent.is_dir():
        return None
    folders = [p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    close = difflib.get_close_matches(path.name, folders, n=1, cutoff=0.6)
    return parent / close[0] if close else None


def _hub_or_folder_note(model: str, similar: Path) -> str:
    return (
        f"options.model {model!r} is not a folder here, so it is read as a Hugging Face Hub id; a local "
        f"folder of a similar name exists: './{similar.as_posix()}'. Write local folders with './' (for "
        f"example model: ./{similar.as_posix()})"
    )


def load_or_explain(
    loader: Callable[..., Any], source: str, revision: str | None, what: str, **kwargs: Any
) -> Any:
    """Call ``loader(source, revision=..., **kwargs)``; a failure says which id/revision and how to fix it."""
    try:
        return loader(source, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        if revision is None:
            hint = "the folder must hold what save_pretrained wrote (config + weights + processor/tokenizer)"
        else:
            hint = (
                f"if you are offline, pre-download it on a machine with network: `hf download {source} "
                f"--revision {revision}` (older clients: `huggingface-cli download {source} --revision "
                f"{revision}`) into the same HF_HOME cache, or set the backbone's options.model to a local "
                "directory written by save_pretrained"
            )
            similar = similar_local_folder(source)
            if similar is not None:
                hint += f"; or, if you meant a local folder: {_hub_or_folder_note(source, similar)}"
        raise ModelNotAvailableError(
            f"cannot load {what} {source!r} (revision {revision}): {err}\n  fix: {hint}"
        ) from err


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    return getattr(torch, name)


def commit_hash(model: Any) -> str | None:
    """The Hub commit a transformers model was loaded from (None for local folders)."""
    return getattr(getattr(model, "config", None), "_commit_hash", None)


def setup_torch(threads: int) -> None:
    """Deterministic CPU inference on ``threads`` threads."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


def parse_random_init(value: Any, where: str) -> RandomInit | None:
    """``None`` or a :class:`RandomInit` from a config mapping."""
    if value is None or isinstance(value, RandomInit):
        return value
    return parse_options(RandomInit, value, f"{where}.random_init")


def check_source_options(model: str, random_init: RandomInit | None, where: str) -> None:
    if model and random_init is not None:
        raise ValueError(f"{where}: set either options.model or options.random_init, not both")


def resolve_model_class(name: str, source: str, revision: str | None, by_model_type: dict[str, str]):
    """The transformers class to load: ``name``, or for ``auto`` the one fitting the checkpoint's type."""
    import transformers

    if name == "auto":
        config = load_or_explain(transformers.AutoConfig.from_pretrained, source, revision, "model config")
        name = by_model_type.get(config.model_type, "AutoModel")
    cls = getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ValueError(
            f"model_class {name!r} is not a transformers model class (e.g. AutoModel, Dinov2Model)"
        )
    return cls


def load_hf_model(cls: Any, source: str, revision: str | None, device: str, dtype: str):
    """Load a transformers model (never with remote code) in eval mode on ``device`` with ``dtype``."""
    import pickle

    try:
        model, info = load_or_explain(
            cls.from_pretrained, source, revision, "model", trust_remote_code=False, output_loading_info=True
        )
    except pickle.UnpicklingError as err:
        files = sorted(Path(source).glob("*.bin")) if Path(source).is_dir() else []
        named = ", ".join(str(f) for f in files) or f"the .bin weight file of {source!r}"
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        unsafe = [line for line in lines if "Unsupported global" in line]
        reason = (unsafe or lines or [""])[-1][:300]
        raise ModelNotAvailableError(
            f"refused to load {named}: a pickled PyTorch weight file holding more than tensors, and "
            f"unpickling it could run code ({reason}). Convert it to safetensors on a machine where you "
            "trust it (load it, then model.save_pretrained(folder), which writes model.safetensors), or "
            "point options.model to a folder or revision with model.safetensors"
        ) from err
    except RuntimeError as err:
        raise ValueError(
            f"the weights of {source!r} do not fit {cls.__name__} ({err}); set options.model_class to "
            "the class the checkpoint was saved from"
        ) from err
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"loading {source!r} into {cls.__name__} leaves {len(missing)} weight(s) randomly initialised "
            f"(e.g. {', '.join(missing[:3])}); set options.model_class to the checkpoint's class"
        )
    return model.eval().to(device=resolve_device(device), dtype=torch_dtype(dtype))


class HuggingFaceKind(LatentKind):
    """Base of the kinds whose options name a model (Hub id or folder) or a ``random_init`` to build."""

    @property
    def pretrained(self) -> bool:
        return self.options.random_init is None

    def default_label(self) -> str:
        if self.options.random_init is not None:
            arch = resolve_architecture(self.kind, self.options.random_init)
            return f"{ARCHITECTURE_LABELS[arch]} (random init)"
        return self.pretrained_label()

    @abstractmethod
    def pretrained_label(self) -> str:
        """The default label of a pretrained (not random-init) model."""

    @property
    def where(self) -> str:
        """Config path of this backbone, for error messages."""
        return f"backbones.{self.name}"

    def model_source(self, threads: int, weights_dir: str | None) -> tuple[str, str | None]:
        """Check a random init has its built folder, set up torch; (source, revision) to load from."""
        if self.options.random_init is not None and weights_dir is None:
            raise ValueError(
                f"{self.where}: random_init set but no built model folder given (build_random_backbone)"
            )
        setup_torch(threads)
        return resolve_source(self.options.model, self.options.revision, weights_dir, self.where)

    def load_transformers_model(
        self, threads: int, weights_dir: str | None, by_model_type: dict[str, str], inputs: str
    ) -> tuple[Any, Any, str | None]:
        """The options' transformers model (class from ``options.model_class`` or ``by_model_type``) on its
        device and dtype, and what prepares its ``inputs`` (``"tokenizer"`` or ``"processor"``, for images):
        ``(model, tokenizer or processor, revision)``."""
        import transformers

        source, revision = self.model_source(threads, weights_dir)
        cls = resolve_model_class(self.options.model_class, source, revision, by_model_type)
        model = load_hf_model(cls, source, revision, self.options.device, self.options.dtype)
        auto = {"tokenizer": transformers.AutoTokenizer, "processor": transformers.AutoImageProcessor}[inputs]
        return model, load_or_explain(auto.from_pretrained, source, revision, inputs), revision

    def provenance(
        self, model: Any, revision: str | None, output: str, layer: int | None, preprocessing: dict[str, Any]
    ) -> dict[str, Any]:
        """The latents sidecar's account of where they came from: model, revision, output, options."""
        return {
            "model": self.options.model or "random-init",
            "revision": revision,
            "model_class": type(model).__name__,
            "output": output,
            "layer": layer,
            "preprocessing": preprocessing,
            "options": dataclasses.asdict(self.options),
        }

    def image_batches(self, stimuli: Stimuli) -> Iterable[list[int]]:
        """Row indices of ``stimuli`` in batches of ``options.batch_size``, with a progress bar."""
        batch_size = self.options.batch_size
        n_batches = -(-len(stimuli) // batch_size)
        return tqdm(stimuli.batches(batch_size), total=n_batches, desc=f"latents {self.name}")
