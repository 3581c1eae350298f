"""The cloud service: HTTP API, store, dispatcher, link supervisor, alerts, notifications."""
