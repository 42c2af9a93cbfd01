# Storefront ingress: Envoy external authorization (opa-envoy-plugin).
#
# Input is what opa-envoy-plugin builds from an ext_authz CheckRequest:
#   input.attributes.request.http.{method, path, host, headers, ...}
#   input.parsed_path   ["products", "42"]    (path split on "/", query removed)
#   input.parsed_query  {"color": ["red"]}    (every value is an array)
#
# Envoy queries data.storefront.ingress.result and reads the documented
# fields: allowed, headers, http_status, body.
package storefront.ingress

default allow := false

allow if {
	method_allowed
	host_allowed
	route_allowed
}

http_request := input.attributes.request.http

# Header names are case-insensitive. Envoy already lower-cases them, but a
# policy that is also fed by other proxies should not rely on it.
headers[key] := value if {
	some name, value in http_request.headers
	key := lower(name)
}

method := upper(http_request.method)

allowed_methods := {"GET", "POST", "PUT", "DELETE"}

method_allowed if method in allowed_methods

host := lower(http_request.host)

host_patterns := ["shop.example.com", "*.shop.example.com"]

host_allowed if {
	some pattern in host_patterns
	glob.match(pattern, ["."], host)
}

# http.path carries the query string; parsed_path does not.
request_path := parts[0] if {
	parts := split(http_request.path, "?")
}

route := input.parsed_path[0]

preview_requested if "true" in input.parsed_query.preview

is_admin if lower(headers["x-user-role"]) == "admin"

# Presence and shape only: the token itself is verified by the cart service.
has_bearer_token if {
	parts := split(headers.authorization, " ")
	count(parts) == 2
	lower(parts[0]) == "bearer"
	parts[1] != ""
}

public_read if {
	method == "GET"
	route == "products"
	not preview_requested
}

public_read if {
	method == "GET"
	glob.match("/static/**", ["/"], request_path)
}

route_allowed if public_read

route_allowed if {
	route == "admin"
	is_admin
}

route_allowed if {
	method == "GET"
	route == "products"
	preview_requested
	is_admin
}

route_allowed if {
	route == "cart"
	has_bearer_token
}

# First matching explanation wins; undefined when the request is allowed.
deny_reason := "method not allowed" if {
	not method_allowed
} else := "unknown host" if {
	not host_allowed
} else := "admin role required" if {
	route == "admin"
	not is_admin
} else := "admin role required for product previews" if {
	route == "products"
	preview_requested
	not is_admin
} else := "bearer token required" if {
	route == "cart"
	not has_bearer_token
} else := "no matching route" if {
	not route_allowed
}

status_codes := {
	"method not allowed": 405,
	"bearer token required": 401,
}

http_status := 200 if allow

http_status := object.get(status_codes, deny_reason, 403) if not allow

deny_headers := {
	"content-type": "application/json",
	"x-ext-authz-decision": "deny",
}

result_headers := {"x-ext-authz-decision": "allow"} if {
	allow
} else := object.union(deny_headers, {"www-authenticate": `Bearer realm="storefront"`}) if {
	http_status == 401
} else := deny_headers

response_body := "" if {
	allow
} else := json.marshal({"error": deny_reason, "status": http_status})

result := {
	"allowed": allow,
	"headers": result_headers,
	"http_status": http_status,
	"body": response_body,
}
