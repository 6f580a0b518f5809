"""batchrank: offline batch reranking of (query, document) pairs with vLLM, checkpointed to Parquet."""

__version__ = "0.1.0"
