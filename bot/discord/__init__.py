"""The Discord frontend: discord.py events and slash commands in, the core's answers out.

It translates, it does not think: ``client`` wires events, ``commands`` holds the
slash commands, ``context`` turns a Discord place into a Question, ``answer`` and
``streaming`` deliver an answer as throttled edits, ``render`` formats and splits
text, ``feedback`` holds the 👍/👎 buttons, ``sync`` runs admin syncs with progress,
and ``errors`` is the one place failures become a sentence. Everything is sent
with ``allowed_mentions=none``: the bot never pings anyone.

Import this package's modules by absolute name (``bot.discord.render``); inside
them ``import discord`` is the discord.py library.
"""
