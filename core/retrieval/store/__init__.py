"""Vector stores: the interface (``base``), score fusion, LanceDB and Weaviate backends."""
