"""Archivist in Slack: a thin slack-bolt (async) adapter over the core's assistant.

Public surface: :func:`bot.slack.app.build_slack_app`, :func:`bot.slack.app.serve_slack`,
:func:`bot.slack.server.build_web_app` and :class:`bot.slack.credentials.SlackCredentials`.
Every other module is an implementation detail:

    credentials.py  tokens and URLs from the environment (ConfigError names what is missing)
    app.py          the composition: AsyncApp + middleware + listeners; Socket Mode / HTTP
    server.py       the aiohttp web app serving /slack/events
    dedupe.py       Slack retries dropped via Redis SET NX (several processes side by side)
    claims.py       one answer per message and the threads Archivist follows
    ask.py          mention, DM, thread follow-up, emoji trigger, message shortcut, /ask and sharing
    assistant.py    the AI-app split view (AsyncAssistant): prompts, status, title, scoped answers
    home.py         the App Home tab: open sources, last syncs; for admins, a sync button
    answering.py    one question answered into a thread: stream or placeholder, blocks, record
    streaming.py    Slack's streaming methods, or a placeholder and its throttled edits
    pacing.py       per-workspace rate budgets (token buckets under Slack's tiers)
    render.py       Block Kit for answers and sources, within Slack's limits
    split.py        splitting long text on paragraph and sentence boundaries
    safety.py       model output never pings anyone
    feedback.py     👍/👎 buttons and the "what was wrong?" modal
    admin.py        /archivist sync|status|sources for admins
    failures.py     the adapter's one error boundary: an exception becomes a short honest message
    blocking.py     a small thread pool for Redis and store calls, apart from model generation
"""
