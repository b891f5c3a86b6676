"""The console and the HTTP API (`avtorlm serve`): requests become the same use cases as `avtorlm`."""
