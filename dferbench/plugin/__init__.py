"""The plugin contract (hookspecs, the model method protocol) and the plugin manager."""
