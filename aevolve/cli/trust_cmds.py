"""`aevolve approve` (and `aevolve verify`): signed approvals and verdicts."""

from __future__ import annotations

import click

from aevolve.cli.common import echo_json, json_option, open_repo, style


@click.command("approve")
@click.argument("rev")
@click.option("-m", "--message", default="", metavar="MSG", help="Why you approve it (signed with the approval).")
@json_option
@click.pass_context
def approve_cmd(ctx: click.Context, rev: str, message: str, as_json: bool):
    """Approve exactly the commit REV, signed with your SSH signing key.

    A maintainer change (to the exam or the agent's code) passes the gate only
    with approvals. The key is `git config aevolve.signingKey`, else git's own
    (`gpg.format ssh` + `user.signingKey`). The approval is stored as a note on
    refs/notes/aevolve-approvals, which `git push` carries after `aevolve init`.
    Exit codes: 0 approved, 1 error (no key, signing failed, unknown REV).
    """
    from aevolve._trust.approvals import approve

    repo = open_repo(ctx)
    approval = approve(repo, rev, message)
    if as_json:
        echo_json(approval.to_dict())
        return 0
    subject = repo.resolve(approval.commit).message.strip().splitlines()
    about = f" ({subject[0]})" if subject else ""
    click.echo(style(f"approved {approval.commit[:12]}", fg="green")
               + f"{about} as {approval.signer} ({approval.key})")
    return 0


@click.command("verify")
@click.argument("rev", default="main")
@click.option("--allow-unsigned", is_flag=True, help="Accept a verdict that is not signed (structure still checked).")
@json_option
@click.pass_context
def verify_cmd(ctx: click.Context, rev: str, allow_unsigned: bool, as_json: bool):
    """Is REV's gate verdict valid, and who signed it? Exit 0 valid, 1 not.

    Checks that the note on REV accepts exactly the transition from REV's
    first parent (baseline, tree, exam digest), that a maintainer change has
    its approvals, and that the note is signed by a valid key: by one listed
    in git's allowed signers file (gpg.ssh.allowedSignersFile or
    aevolve.allowedSigners) when one is configured, else by any key.
    """
    from aevolve._trust.verdicts import verify_commit

    repo = open_repo(ctx)
    verdict = verify_commit(repo, rev, require_signed=not allow_unsigned)
    signed_by = verdict.signer and (
        f"{verdict.signer} ({verdict.fingerprint})" if verdict.fingerprint else verdict.signer)
    if as_json:
        echo_json({"commit": verdict.commit, "valid": verdict.valid, "signer": verdict.signer,
                   "fingerprint": verdict.fingerprint, "problems": verdict.problems})
    elif verdict.valid:
        click.echo(style(f"{verdict.commit[:12]}: valid verdict", fg="green")
                   + (f", signed by {signed_by}" if signed_by else ", not signed"))
    else:
        click.echo(style(f"{verdict.commit[:12]}: not a valid verdict", fg="red"))
        for problem in verdict.problems:
            click.echo(f"  - {problem}")
        if signed_by:
            click.echo(f"  (signed by {signed_by})")
    return 0 if verdict.valid else 1
