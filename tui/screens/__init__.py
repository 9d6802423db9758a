"""The screens pushed over the queues view: details, clients, dialogs, help."""
