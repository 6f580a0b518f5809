"""Reading input Parquet and writing scored parts."""
