"""The output directory: its layout, the manifest, the checkpoint (what is done) and the lock."""
