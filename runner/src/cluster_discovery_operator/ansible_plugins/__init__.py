"""Ansible plugins the runner gives its runs: ansible loads them, the runner never imports them."""
