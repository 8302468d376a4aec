"""The notification domain of the alert service: models, service functions, HTTP views."""
