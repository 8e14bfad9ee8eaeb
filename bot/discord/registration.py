"""Registering the application commands with Discord: only when they changed, never fatal.

Discord keeps an app's commands until they are overwritten, and creating commands is
rate limited (200 a day per server), so the tree is sent only when its payload differs
from the last one Discord accepted: a hash of it per application and scope (global, or
one server) is kept in ``DATA_DIR/discord/commands.json``. With ``[discord] dev_guild``
the commands are registered in that server only, where changes show at once (global
commands can take a while to reach every client). Switching between the two empties the
scope used before, or a server would list every command twice (Discord keeps both). A
failure is logged once, with what to do, and the bot runs on with the commands Discord
already has.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import aiohttp
import discord
from discord import app_commands

log = logging.getLogger(__name__)

STATE_FILE = Path("discord") / "commands.json"
MISSING_SCOPE_HELP = (
    "re-invite the bot with the applications.commands scope (Developer Portal → your app → "
    "OAuth2 → URL Generator → bot + applications.commands) and restart"
)


def payload_hash(tree: app_commands.CommandTree, guild: discord.abc.Snowflake | None) -> str:
    """A stable hash of what ``tree.sync(guild=guild)`` would send."""
    commands = tree.get_commands(guild=guild)
    payload = sorted((command.to_dict(tree) for command in commands), key=lambda c: (c["type"], c["name"]))
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _load(path: Path) -> dict[str, str]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s): the commands will be registered again", path, exc)
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _save(path: Path, state: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        log.warning(
            "could not record the registered commands in %s (%s): they are sent again next start", path, exc
        )


async def register_commands(
    tree: app_commands.CommandTree, *, data_dir: Path, dev_guild: str | None = None
) -> bool:
    """Send the command tree to Discord if it changed; True when Discord has it now.

    Never raises for Discord's or the network's sake: start-up goes on either way.
    """
    client = tree.client
    guild = discord.Object(int(dev_guild)) if dev_guild else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    scope = f"{client.application_id}:{dev_guild or 'global'}"
    path = data_dir / STATE_FILE
    state = _load(path)
    digest = payload_hash(tree, guild)
    if state.get(scope) == digest:
        log.info("application commands unchanged since the last start; not registering them again")
    elif not await _send(tree, guild, _where(dev_guild)):
        return False
    else:
        state[scope] = digest
        _save(path, state)
    await _withdraw_elsewhere(tree, state, path, keep=scope)
    return True


def _where(dev_guild: str | None) -> str:
    if dev_guild:
        return f"server {dev_guild}"
    return "all servers (global commands can take up to an hour to appear)"


async def _send(
    tree: app_commands.CommandTree, guild: discord.abc.Snowflake | None, where: str, action: str = "register"
) -> bool:
    """``tree.sync(guild=guild)``, with every failure logged; True when Discord took it."""
    try:
        await tree.sync(guild=guild)
    except discord.Forbidden as exc:
        log.warning(
            "could not %s the slash commands in %s: %s; to fix it, %s", action, where, exc, MISSING_SCOPE_HELP
        )
        return False
    except app_commands.MissingApplicationID:
        log.warning("could not %s the slash commands: the client has no application id yet", action)
        return False
    except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError) as exc:
        log.warning(
            "could not %s the slash commands in %s: %s; the bot runs with the commands Discord "
            "already has, and tries again at the next start",
            action,
            where,
            exc,
        )
        return False
    log.info("%s the slash commands in %s", "registered" if action == "register" else "removed", where)
    return True


async def _withdraw_elsewhere(
    tree: app_commands.CommandTree, state: dict[str, str], path: Path, keep: str
) -> None:
    """Empty the other scopes this application registered in before (global, or a dev server).

    Discord keeps an app's global and server commands side by side, so after a switch of
    ``dev_guild`` a server would list each command twice. A scope that cannot be emptied
    now stays recorded and is tried again at the next start.
    """
    prefix = keep.split(":", 1)[0] + ":"
    for scope in sorted(s for s in state if s.startswith(prefix) and s != keep):
        where = scope.removeprefix(prefix)
        if where != "global" and not where.isdigit():
            continue  # not a scope this module writes: a hand-edited file
        guild = None if where == "global" else discord.Object(int(where))
        kept = tree.get_commands(guild=guild)
        tree.clear_commands(guild=guild)  # what the tree sends is what Discord keeps: nothing
        try:
            emptied = await _send(
                tree, guild, "all servers" if guild is None else f"server {where}", "remove"
            )
        finally:
            for command in kept:
                tree.add_command(command, guild=guild)
        if emptied:
            del state[scope]
            _save(path, state)
