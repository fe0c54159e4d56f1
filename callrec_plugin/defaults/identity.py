"""Built-in answers about users, used only when no host plugin answers: deny by default."""
from callrec_plugin.hooks import hookimpl


@hookimpl(trylast=True)
def callrec_user_roles(user):
    # A user the host says nothing about holds no role and may do nothing.
    return set()


@hookimpl(trylast=True)
def callrec_user_ref(user):
    ref = str(user.get_id())
    return {"ref": ref, "name": str(getattr(user, "name", None) or ref)}


@hookimpl(trylast=True)
def callrec_practice_ref(user):
    return None
