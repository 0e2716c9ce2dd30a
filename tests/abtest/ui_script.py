"""A tiny Streamlit script around ui.abtest, driven by AppTest through session_state."""

import streamlit as st

from ui.abtest import ab_report_section, ab_review_section, ab_settings_section


def _suggest(subject: str, count: int) -> list[str]:
    # Stands in for the page's call into core.abtest.suggest_subject_variants.
    return [f"{subject} (take {i})" for i in range(1, count + 1)]


if "review" in st.session_state:
    ab_review_section(st.session_state["review"])
elif "report" in st.session_state:
    st.session_state["chosen"] = ab_report_section(st.session_state["report"])
else:
    st.session_state["result"] = ab_settings_section(
        st.session_state.get("templates", {}),
        st.session_state.get("current"),
        default_subject="Spring is here",
        default_template_id=st.session_state.get("default_template"),
        suggest=_suggest if st.session_state.get("with_ai") else None,
        recipients=st.session_state.get("recipients"),
    )
