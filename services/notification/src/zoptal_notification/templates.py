"""Server-side email templates for the platform's own emails (usage limits).

Billing sends ``template="usage_limit_warning"`` at 80 % of a limit and ``usage_limit_reached``
at 100 %, with ``template_data`` keys ``metric``, ``used``, ``limit`` and optionally ``plan``.
Values are escaped in the HTML part; a missing key is the caller's mistake (INVALID_ARGUMENT),
and so is a value that would not fit the subject line (a line break, or a subject over 998
characters): it is refused when SendEmail is called, not at every delivery attempt after it.
"""

from __future__ import annotations

import html
import string
from collections.abc import Mapping
from dataclasses import dataclass

from meshcore.errors import InvalidArgument

from zoptal_notification.domain import MAX_SUBJECT_LENGTH, check_subject

__all__ = ["TEMPLATES", "EmailTemplate", "RenderedEmail", "render_template"]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


@dataclass(frozen=True)
class EmailTemplate:
    name: str
    subject: str
    body_text: str
    body_html: str
    required: frozenset[str]
    defaults: Mapping[str, str]

    def render(self, data: Mapping[str, str]) -> RenderedEmail:
        missing = sorted(self.required - data.keys())
        if missing:
            raise InvalidArgument(
                "template_data",
                f"template {self.name!r} needs the key(s) {', '.join(missing)}",
            )
        values = {**self.defaults, **data}
        subject_template = string.Template(self.subject)
        for key in subject_template.get_identifiers():
            if key in data:
                check_subject(f"template_data[{key!r}]", data[key])
        subject = subject_template.safe_substitute(values)
        if len(subject) > MAX_SUBJECT_LENGTH:
            raise InvalidArgument(
                "template_data",
                f"makes the subject longer than {MAX_SUBJECT_LENGTH} characters",
            )
        escaped = {key: html.escape(value) for key, value in values.items()}
        return RenderedEmail(
            subject=subject,
            body_text=string.Template(self.body_text).safe_substitute(values),
            body_html=string.Template(self.body_html).safe_substitute(escaped),
        )


_USAGE_KEYS = frozenset({"metric", "used", "limit"})
_USAGE_DEFAULTS = {"plan": "your"}

TEMPLATES: Mapping[str, EmailTemplate] = {
    template.name: template
    for template in (
        EmailTemplate(
            name="usage_limit_warning",
            subject="You have used 80% of your ${metric} limit",
            body_text=(
                "Hello,\n\n"
                "You have used ${used} of the ${limit} ${metric} included in ${plan} plan.\n"
                "When you reach the limit, new ${metric} will be refused until the next period "
                "or until you upgrade.\n\n"
                "The Zoptal team\n"
            ),
            body_html=(
                "<p>Hello,</p>"
                "<p>You have used <strong>${used}</strong> of the ${limit} ${metric} included in "
                "${plan} plan.</p>"
                "<p>When you reach the limit, new ${metric} will be refused until the next "
                "period or until you upgrade.</p><p>The Zoptal team</p>"
            ),
            required=_USAGE_KEYS,
            defaults=_USAGE_DEFAULTS,
        ),
        EmailTemplate(
            name="usage_limit_reached",
            subject="You have reached your ${metric} limit",
            body_text=(
                "Hello,\n\n"
                "You have used all ${limit} ${metric} included in ${plan} plan (${used} used).\n"
                "New ${metric} are refused until the next period or until you upgrade.\n\n"
                "The Zoptal team\n"
            ),
            body_html=(
                "<p>Hello,</p>"
                "<p>You have used all <strong>${limit}</strong> ${metric} included in ${plan} "
                "plan (${used} used).</p>"
                "<p>New ${metric} are refused until the next period or until you upgrade.</p>"
                "<p>The Zoptal team</p>"
            ),
            required=_USAGE_KEYS,
            defaults=_USAGE_DEFAULTS,
        ),
    )
}


def render_template(name: str, data: Mapping[str, str]) -> RenderedEmail:
    template = TEMPLATES.get(name)
    if template is None:
        known = ", ".join(sorted(TEMPLATES))
        raise InvalidArgument("template", f"unknown template {name!r} (known: {known})")
    return template.render(data)
