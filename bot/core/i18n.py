"""The bot's fixed texts in the customer's language: English, German, French and Spanish.

Everything the service itself says to a customer (a hand-over notice, out-of-hours, the note
under an answer given while they wait, a card-number warning, the answerer's own sentences: its
hand-over and the "which of these?" question) is looked up here with :func:`translate`, in the
locale the widget sent in ``hello`` (``conversations.locale``; on ``POST /api/ask``, the
``Accept-Language`` header), so a German shop's customers are not told in English that a person
is coming. Article text itself is never translated. The catalogues are
written by us, not machine-translated at run time: a notice must say exactly what the service
does. English is the reference and the fallback for a missing locale, an unknown one, or a key
another catalogue lacks; a regional tag uses its language (``de-AT`` -> ``de``).
The widget's own texts live in the widget (``widget/supportbot.js``, ``widget/locale.*.js``).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

DEFAULT_LOCALE: Final = "en"

CATALOGUES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "bot_again": "You're chatting with our virtual assistant again. Ask for a person any time.",
        "agent_joined": "{agent} from our team has joined the conversation.",
        "agent_back": "{agent} will pick this up again here.",
        "resolved": "This conversation has been marked as resolved. Write again here any time "
        "if you need more help.",
        "handoff_open": "Connecting you with a person. Someone from our team will reply here "
        "shortly.",
        "handoff_closed": "Connecting you with a person. Our team is offline right now; someone "
        "will reply here {when}. If you like, leave your email address and we will follow up "
        "there too.",
        "handoff_closed_no_email": "Connecting you with a person. Our team is offline right now; "
        "someone will reply here {when}.",
        "escalate_customer_request": "Of course, I'm passing you to a member of our support team.",
        "escalate_no_knowledge": "I couldn't find anything about that in our help articles, so "
        "I'm passing your question to a member of our support team.",
        "escalate_low_confidence": "I'm not sure our help articles answer that, so I'm passing "
        "your question to a member of our support team.",
        "escalate_error": "Sorry, something went wrong on our side while looking that up, so I'm "
        "passing your question to a member of our support team.",
        "meanwhile_article": "In the meantime, the article below may help.",
        "which_of_these": "I found a few articles that might match. Which one is closest to your "
        "question?",
        "answer_cut_off": "(Sorry, I could not finish this answer.)",
        "contact_saved": "Thanks, we'll also follow up at {email}.",
        "waiting_note": "(Automatic answer from our virtual assistant. You're still in the queue: "
        "a person from our team will reply here {when}.)",
        "shortly": "shortly",
        "card_warning": "For your security, please don't send card numbers in this chat. We never "
        "need your full card number, CVC or password here; if you shared one, consider "
        "contacting your bank.",
        "asap": "as soon as possible",
        "today_at": "today at {time} ({zone})",
        "tomorrow_at": "tomorrow at {time} ({zone})",
        "weekday_at": "on {weekday} at {time} ({zone})",
        "weekdays": "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
    },
    "de": {
        "bot_again": "Sie chatten wieder mit unserem virtuellen Assistenten. Sie können jederzeit "
        "nach einem Menschen fragen.",
        "agent_joined": "{agent} aus unserem Team ist der Unterhaltung beigetreten.",
        "agent_back": "{agent} kümmert sich hier wieder darum.",
        "resolved": "Diese Unterhaltung wurde als erledigt markiert. Schreiben Sie hier "
        "jederzeit wieder, wenn Sie weitere Hilfe brauchen.",
        "handoff_open": "Wir verbinden Sie mit einem Menschen. Jemand aus unserem Team antwortet "
        "Ihnen hier in Kürze.",
        "handoff_closed": "Wir verbinden Sie mit einem Menschen. Unser Team ist gerade nicht "
        "erreichbar; jemand antwortet Ihnen hier {when}. Wenn Sie möchten, hinterlassen Sie "
        "Ihre E-Mail-Adresse, dann melden wir uns auch dort.",
        "handoff_closed_no_email": "Wir verbinden Sie mit einem Menschen. Unser Team ist gerade "
        "nicht erreichbar; jemand antwortet Ihnen hier {when}.",
        "escalate_customer_request": "Gern, ich gebe Sie an jemanden aus unserem Support-Team "
        "weiter.",
        "escalate_no_knowledge": "Dazu habe ich in unseren Hilfeartikeln nichts gefunden, daher "
        "gebe ich Ihre Frage an jemanden aus unserem Support-Team weiter.",
        "escalate_low_confidence": "Ich bin nicht sicher, ob unsere Hilfeartikel das beantworten, "
        "daher gebe ich Ihre Frage an jemanden aus unserem Support-Team weiter.",
        "escalate_error": "Entschuldigung, bei der Suche ist bei uns etwas schiefgelaufen, daher "
        "gebe ich Ihre Frage an jemanden aus unserem Support-Team weiter.",
        "meanwhile_article": "Bis dahin hilft Ihnen vielleicht der Artikel unten.",
        "which_of_these": "Ich habe einige Artikel gefunden, die passen könnten. Welcher kommt "
        "Ihrer Frage am nächsten?",
        "answer_cut_off": "(Entschuldigung, ich konnte diese Antwort nicht zu Ende schreiben.)",
        "contact_saved": "Danke, wir melden uns auch unter {email}.",
        "waiting_note": "(Automatische Antwort unseres virtuellen Assistenten. Sie bleiben in der "
        "Warteschlange: Jemand aus unserem Team antwortet Ihnen hier {when}.)",
        "shortly": "in Kürze",
        "card_warning": "Zu Ihrer Sicherheit: Bitte senden Sie in diesem Chat keine "
        "Kartennummern. Wir brauchen hier nie Ihre vollständige Kartennummer, CVC oder Ihr "
        "Passwort; falls Sie eines davon geteilt haben, wenden Sie sich an Ihre Bank.",
        "asap": "so bald wie möglich",
        "today_at": "heute um {time} ({zone})",
        "tomorrow_at": "morgen um {time} ({zone})",
        "weekday_at": "am {weekday} um {time} ({zone})",
        "weekdays": "Montag,Dienstag,Mittwoch,Donnerstag,Freitag,Samstag,Sonntag",
    },
    "fr": {
        "bot_again": "Vous discutez à nouveau avec notre assistant virtuel. Demandez une personne "
        "à tout moment.",
        "agent_joined": "{agent}, de notre équipe, a rejoint la conversation.",
        "agent_back": "{agent} reprendra la conversation ici.",
        "resolved": "Cette conversation a été marquée comme résolue. Écrivez-nous ici à tout "
        "moment si vous avez besoin d'aide.",
        "handoff_open": "Nous vous mettons en relation avec une personne. Un membre de notre "
        "équipe vous répondra ici sous peu.",
        "handoff_closed": "Nous vous mettons en relation avec une personne. Notre équipe est "
        "absente pour le moment ; quelqu'un vous répondra ici {when}. Si vous le souhaitez, "
        "laissez votre adresse e-mail et nous vous répondrons aussi par e-mail.",
        "handoff_closed_no_email": "Nous vous mettons en relation avec une personne. Notre "
        "équipe est absente pour le moment ; quelqu'un vous répondra ici {when}.",
        "escalate_customer_request": "Bien sûr, je vous mets en relation avec un membre de notre "
        "équipe d'assistance.",
        "escalate_no_knowledge": "Je n'ai rien trouvé à ce sujet dans nos articles d'aide, je "
        "transmets donc votre question à un membre de notre équipe d'assistance.",
        "escalate_low_confidence": "Je ne suis pas sûr que nos articles d'aide répondent à cette "
        "question, je la transmets donc à un membre de notre équipe d'assistance.",
        "escalate_error": "Désolé, un problème est survenu de notre côté pendant la recherche, je "
        "transmets donc votre question à un membre de notre équipe d'assistance.",
        "meanwhile_article": "En attendant, l'article ci-dessous pourra peut-être vous aider.",
        "which_of_these": "J'ai trouvé quelques articles qui pourraient correspondre. Lequel se "
        "rapproche le plus de votre question ?",
        "answer_cut_off": "(Désolé, je n'ai pas pu terminer cette réponse.)",
        "contact_saved": "Merci, nous vous répondrons aussi à {email}.",
        "waiting_note": "(Réponse automatique de notre assistant virtuel. Vous êtes toujours "
        "dans la file d'attente : un membre de notre équipe vous répondra ici {when}.)",
        "shortly": "sous peu",
        "card_warning": "Pour votre sécurité, n'envoyez pas de numéro de carte dans ce chat. "
        "Nous n'avons jamais besoin ici de votre numéro de carte complet, de votre cryptogramme "
        "ou de votre mot de passe ; si vous en avez partagé un, contactez votre banque.",
        "asap": "dès que possible",
        "today_at": "aujourd'hui à {time} ({zone})",
        "tomorrow_at": "demain à {time} ({zone})",
        "weekday_at": "{weekday} à {time} ({zone})",
        "weekdays": "lundi,mardi,mercredi,jeudi,vendredi,samedi,dimanche",
    },
    "es": {
        "bot_again": "Vuelves a hablar con nuestro asistente virtual. Pide una persona cuando "
        "quieras.",
        "agent_joined": "{agent}, de nuestro equipo, se ha unido a la conversación.",
        "agent_back": "{agent} retomará la conversación aquí.",
        "resolved": "Esta conversación se ha marcado como resuelta. Escríbenos aquí cuando "
        "quieras si necesitas más ayuda.",
        "handoff_open": "Te estamos poniendo con una persona. Alguien de nuestro equipo te "
        "responderá aquí en breve.",
        "handoff_closed": "Te estamos poniendo con una persona. Nuestro equipo no está "
        "disponible ahora; alguien te responderá aquí {when}. Si quieres, déjanos tu correo "
        "electrónico y también te responderemos allí.",
        "handoff_closed_no_email": "Te estamos poniendo con una persona. Nuestro equipo no está "
        "disponible ahora; alguien te responderá aquí {when}.",
        "escalate_customer_request": "Por supuesto, te paso con una persona de nuestro equipo de "
        "soporte.",
        "escalate_no_knowledge": "No he encontrado nada sobre eso en nuestros artículos de ayuda, "
        "así que paso tu pregunta a una persona de nuestro equipo de soporte.",
        "escalate_low_confidence": "No estoy seguro de que nuestros artículos de ayuda respondan "
        "a eso, así que paso tu pregunta a una persona de nuestro equipo de soporte.",
        "escalate_error": "Lo siento, algo ha fallado por nuestra parte al buscarlo, así que paso "
        "tu pregunta a una persona de nuestro equipo de soporte.",
        "meanwhile_article": "Mientras tanto, puede que te ayude el artículo de abajo.",
        "which_of_these": "He encontrado algunos artículos que podrían servir. ¿Cuál se acerca "
        "más a tu pregunta?",
        "answer_cut_off": "(Lo siento, no he podido terminar esta respuesta.)",
        "contact_saved": "Gracias, también te responderemos en {email}.",
        "waiting_note": "(Respuesta automática de nuestro asistente virtual. Sigues en la cola: "
        "una persona de nuestro equipo te responderá aquí {when}.)",
        "shortly": "en breve",
        "card_warning": "Por tu seguridad, no envíes números de tarjeta en este chat. Nunca "
        "necesitamos aquí tu número de tarjeta completo, el CVC ni tu contraseña; si has "
        "compartido alguno, ponte en contacto con tu banco.",
        "asap": "lo antes posible",
        "today_at": "hoy a las {time} ({zone})",
        "tomorrow_at": "mañana a las {time} ({zone})",
        "weekday_at": "el {weekday} a las {time} ({zone})",
        "weekdays": "lunes,martes,miércoles,jueves,viernes,sábado,domingo",
    },
}

SUPPORTED_LOCALES: Final = tuple(CATALOGUES)


def resolve_locale(locale: str | None) -> str:
    """The catalogue for a BCP 47 tag: the exact one, else its language, else English."""
    if not locale:
        return DEFAULT_LOCALE
    tag = locale.strip().lower().replace("_", "-")
    if tag in CATALOGUES:
        return tag
    language = tag.split("-", 1)[0]
    return language if language in CATALOGUES else DEFAULT_LOCALE


def translate(key: str, locale: str | None = None, **params: object) -> str:
    """The text ``key`` in ``locale`` with ``{name}`` placeholders filled from ``params``.

    A key the locale's catalogue lacks falls back to English; a key English lacks is a
    programming error and raises ``KeyError`` (tests/unit/test_i18n.py keeps the catalogues
    complete)."""
    catalogue = CATALOGUES[resolve_locale(locale)]
    text = catalogue.get(key) or CATALOGUES[DEFAULT_LOCALE][key]
    return text.format(**params) if params else text


def weekday_name(weekday: int, locale: str | None = None) -> str:
    """Monday is 0, as in :meth:`datetime.date.weekday`."""
    return translate("weekdays", locale).split(",")[weekday]


answer_locale: ContextVar[str | None] = ContextVar("answer_locale", default=None)
"""The locale of the customer whose question is being answered, set by the answer task
(``bot.live.customer``, the conversation's locale) and by ``POST /api/ask`` (its
``Accept-Language`` header), and read by the answerers: retrieval prefers articles in that
language (:func:`bot.knowledge.answerers.prefer_language`) and the answerer's own sentences (the
hand-over, "which of these?") are said in it; a context variable, because the answerer's
interface is the same for every caller and ``asyncio.to_thread`` carries it into the worker."""


def locale_from_accept_language(header: str | None) -> str | None:
    """The tag of an HTTP ``Accept-Language`` header the customer prefers most among the
    languages we have a catalogue for (``de-AT,de;q=0.9,en;q=0.8`` -> ``de-AT``); ``None`` when
    the header is missing, malformed or names none of them (the caller then speaks English)."""
    best: tuple[float, int, str] | None = None
    for index, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or language_of(tag) not in CATALOGUES:
            continue
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight <= 0.0:
            continue
        if best is None or (weight, -index) > (best[0], best[1]):
            best = (weight, -index, tag)
    return best[2] if best is not None else None


def language_of(tag: str | None) -> str:
    """The language part of a tag, lower case: ``de-AT`` -> ``de``; empty when there is none."""
    return (tag or "").strip().lower().replace("_", "-").split("-", 1)[0]
