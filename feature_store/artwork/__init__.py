"""Personalized artwork: which of a title's artwork variants a member is shown.

`ope` estimates any policy's play rate from impressions another policy chose (replay,
IPS, SNIPS, doubly robust, with session-clustered intervals); `policies` are the policies
themselves, each giving every candidate variant its probability.
"""
