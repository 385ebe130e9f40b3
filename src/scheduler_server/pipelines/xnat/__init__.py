"""XNAT as the scheduler talks to it: the configured servers, the REST client, verified submissions and alias tokens.

Only hosts listed in ``xnat.servers`` are ever contacted (``hosts.py``); with none
listed, the package is not used and pipelines keep the seed's behaviour.
"""
