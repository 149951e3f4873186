"""The shipped Mosquitto setup: broker config, example certificates and passwords, ACL generated from plant files."""
