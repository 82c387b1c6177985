"""push-summary: a gitauto plugin in Python.

For a push, it opens the deployed checkout named in its settings (through gitauto's
git capability), logs what the push brought, and returns an outcome whose output
later steps can template: the checkout's HEAD, the branch, the commits and the
changed paths. With `notify` set to a URL, it also posts that summary there, through
`requests_lite` (the `requests` calling convention on gitauto's `http` interface, under
the plugin's grant).
"""

import json

import requests_lite
import wit_world
from componentize_py_types import Err
from wit_world.imports import git, log, types


def info(message: str) -> None:
    log.log(log.Level.INFO, message)


class WitWorld(wit_world.WitWorld):
    def handle(self, event: types.Event, settings: str) -> types.Outcome:
        config = json.loads(settings or "{}")
        checkout = config.get("checkout")
        if not checkout:
            raise Err(types.Error_InvalidSettings("`checkout` is required: the path of the repository's checkout"))
        if event.kind != "push" or event.branch is None:
            return types.Outcome(types.Status.SKIPPED, f"not a branch push ({event.kind})", "null")

        try:
            repo = git.Repository.open(checkout)
            head = repo.head()
        except Err as err:
            # A refused or missing checkout: the step fails and says why.
            return types.Outcome(types.Status.FAILURE, f"cannot open {checkout}: {err.value.value}", "null")

        changed = []
        if event.before and event.after:
            try:
                changed = [change.path for change in repo.changed_paths(event.before, event.after)]
            except Err:
                # The checkout does not have both commits yet: use what the forge listed.
                for commit in event.commits:
                    changed.extend(commit.added + commit.modified + commit.removed)

        who = event.sender or "someone"
        info(f"{who} pushed {len(event.commits)} commit(s) to {event.repository.full_name} {event.branch}")
        for path in sorted(set(changed)):
            info(f"changed: {path}")
        output = {
            "head": head,
            "branch": event.branch,
            "commits": [commit.id for commit in event.commits],
            "changed": sorted(set(changed)),
        }
        summary = f"{event.repository.full_name}@{event.branch}: {len(output['changed'])} path(s) changed; checkout at {(head or '')[:10]}"
        if config.get("notify"):
            try:
                response = requests_lite.post(config["notify"], json={"summary": summary, **output}, timeout=10)
            except requests_lite.RequestException as err:
                return types.Outcome(types.Status.FAILURE, f"could not notify {config['notify']}: {err}", "null")
            output["notified"] = response.status_code
            output["answer"] = response.text
        return types.Outcome(types.Status.SUCCESS, summary, json.dumps(output))
