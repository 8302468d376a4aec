"""The route domain of the alert service: models, service functions, HTTP views."""
