# Payments API: role-based access control.
#
# Input:  {"user": "alice", "action": "refund", "resource": "orders/1001", "amount": 2500}
# Data:   data.payments.users  (payments/data.json)
#         data.payments.roles  (payments/roles/data.json)
#
# A grant {"action", "resource"} matches when its action is "*" or equal to the
# requested action, and its resource is "*", equal to the requested resource, or
# a prefix pattern ending in "/*" ("orders/*" matches "orders/1001" and
# "orders/1001/items"). A role's "inherits" list adds those roles' grants (one
# level). Refunds are capped by the highest "refund_limit" among the user's
# roles; roles without a limit do not cap anything. The amount must be a JSON
# number: Rego orders values of different types (every string sorts after every
# number), so "250" > 10000 would hold without the numeric_amount guard.
#
# Negated expressions never contain a reference that may be undefined: OPA
# evaluates references found inside a negated call's arguments (or inside a
# negated ref's brackets) outside the negation, so `not is_number(input.amount)`
# is undefined, not true, when input.amount is missing. Hence `numeric_amount`,
# `object.get` and the `is_string(input.user)` guard below.
package payments.authz

default allow := false

allow if {
	user := data.payments.users[input.user]
	user.active
	permitted
	not refund_blocked
}

required_fields := ["user", "action", "resource"]

# Roles held directly plus the roles they inherit from.
user_roles contains role if {
	some role in data.payments.users[input.user].roles
}

user_roles contains inherited if {
	some role in data.payments.users[input.user].roles
	some inherited in data.payments.roles[role].inherits
}

user_grants contains grant if {
	some role in user_roles
	some grant in data.payments.roles[role].grants
}

permitted if {
	some grant in user_grants
	action_matches(grant.action, input.action)
	resource_matches(grant.resource, input.resource)
}

action_matches(pattern, action) if pattern in {"*", action}

resource_matches(pattern, resource) if pattern in {"*", resource}

resource_matches(pattern, resource) if {
	endswith(pattern, "/*")
	startswith(resource, trim_suffix(pattern, "*"))
}

# Highest refund limit among the user's roles; undefined when no role sets one.
refund_limit := max(limits) if {
	limits := [limit | some role in user_roles; limit := data.payments.roles[role].refund_limit]
	count(limits) > 0
}

numeric_amount if is_number(input.amount)

refund_blocked if {
	input.action == "refund"
	not numeric_amount
}

refund_blocked if {
	input.action == "refund"
	numeric_amount
	input.amount > refund_limit
}

deny_reasons contains msg if {
	some field in required_fields
	not is_string(object.get(input, field, null))
	msg := sprintf("input.%s is missing or not a string", [field])
}

deny_reasons contains msg if {
	is_string(input.user)
	not data.payments.users[input.user]
	msg := sprintf("unknown user %s", [input.user])
}

deny_reasons contains msg if {
	user := data.payments.users[input.user]
	not user.active
	msg := sprintf("user %s is not active", [input.user])
}

deny_reasons contains msg if {
	data.payments.users[input.user]
	is_string(input.action)
	is_string(input.resource)
	not permitted
	msg := sprintf("no role of user %s grants %s on %s", [input.user, input.action, input.resource])
}

deny_reasons contains "refund requests must include a numeric amount" if {
	input.action == "refund"
	not numeric_amount
}

deny_reasons contains msg if {
	input.action == "refund"
	numeric_amount
	input.amount > refund_limit
	msg := sprintf("refund amount %v exceeds the limit of %v for user %s", [input.amount, refund_limit, input.user])
}
