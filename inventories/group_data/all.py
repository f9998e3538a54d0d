"""Data for every host of the inventories in this directory (pyinfra group_data)."""
