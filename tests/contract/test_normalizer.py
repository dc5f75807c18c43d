"""The transcript normaliser: what it replaces must not depend on the lab's seed data."""

from __future__ import annotations

from types import SimpleNamespace

from .runner import Context, Normalizer

ME = {"id": "11111111-1111-4111-8111-111111111111", "first_name": "Lab", "last_name": "Admin",
      "email": "admin@lab.test", "display_name": "admin"}  # fmt: skip
MEMBER = {"id": "22222222-2222-4222-8222-222222222222", "first_name": "Lab", "last_name": "Member",
          "email": "member@lab.test", "display_name": "member"}  # fmt: skip


def normalizer() -> Normalizer:
    target = SimpleNamespace(
        project_id="33333333-3333-4333-8333-333333333333",
        workspace_id="44444444-4444-4444-8444-444444444444",
        slug="plane-lab", me=ME, member=MEMBER,
    )  # fmt: skip
    return Normalizer(Context(target=target))  # type: ignore[arg-type]


def test_users_sharing_a_first_name_keep_their_own_placeholders() -> None:
    # A lab seeded with "Lab Admin" and "Lab Member": the member's first name used to come out
    # as <me.first_name>, and a probe failed against a healthy server.
    out = normalizer().transcript({"assignees": [dict(MEMBER)], "created_by": dict(ME)})
    assert out["assignees"][0]["first_name"] == "<member.first_name>"
    assert out["assignees"][0]["id"] == "<member>"
    assert out["created_by"]["first_name"] == "<me.first_name>"
    assert out["created_by"]["last_name"] == "<me.last_name>"


def test_a_user_object_with_a_changed_name_is_not_hidden() -> None:
    renamed = dict(MEMBER, first_name="Someone")
    out = normalizer().transcript({"assignees": [renamed]})
    assert out["assignees"][0]["first_name"] == "Someone"
    assert out["assignees"][0]["last_name"] == "<member.last_name>"
