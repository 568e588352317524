//! Who a token is: the organization, OAuth client and scopes behind it
//! (`GET /api/v2/tokens/me`) and, for a person's sign-in, the user (`GET /api/v2/users/me`).
//!
//! The text comes from the server as it is: show it to a person only after making it safe
//! ([`terminal_safe`](crate::redact::terminal_safe)), since an organisation name can hold terminal escapes.

use crate::client::ApiClient;
use crate::error::Result;
use serde_json::Value;

/// What `GET /api/v2/tokens/me` says about the token in use. Missing fields are `None` (or no
/// scopes): the preflight reports what it can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenIdentity {
    /// The organization the token belongs to.
    pub organization: Option<Named>,
    /// The OAuth client the token was issued to.
    pub oauth_client: Option<Named>,
    /// The scopes the token carries (`authorizedScope`), in the server's order.
    pub scopes: Vec<String>,
}

/// An object the API names: an organization, an OAuth client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    /// Its id, if the API gave one.
    pub id: Option<String>,
    /// Its name, if the API gave one.
    pub name: Option<String>,
}

/// The signed-in user, from `GET /api/v2/users/me` (a client-credentials token has none: that
/// call fails for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: Option<String>,
    /// The user's name.
    pub name: Option<String>,
    /// The user's email address.
    pub email: Option<String>,
}

impl ApiClient {
    /// Who the token is: `GET /api/v2/tokens/me`, read into its organization, OAuth client and
    /// scopes.
    ///
    /// ```no_run
    /// # async fn run(client: tokenwarden::ApiClient) -> tokenwarden::Result<()> {
    /// let me = client.token_identity().await?;
    /// println!("{} scopes", me.scopes.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`get_json`](Self::get_json): the token could not be had, the request failed or was
    /// answered with an error status, or the body is not JSON.
    pub async fn token_identity(&self) -> Result<TokenIdentity> {
        let me = self.get_json("/api/v2/tokens/me").await?;
        Ok(TokenIdentity::from_json(&me))
    }

    /// The signed-in user: `GET /api/v2/users/me`.
    ///
    /// # Errors
    /// As [`get_json`](Self::get_json); a token with no user (client credentials) is refused by
    /// the API.
    pub async fn current_user(&self) -> Result<User> {
        let me = self.get_json("/api/v2/users/me").await?;
        Ok(User {
            id: text(&me, "id"),
            name: text(&me, "name"),
            email: text(&me, "email"),
        })
    }
}

impl TokenIdentity {
    fn from_json(me: &Value) -> Self {
        let named = |key| {
            me.get(key).map(|v| Named {
                id: text(v, "id"),
                name: text(v, "name"),
            })
        };
        Self {
            organization: named("organization"),
            oauth_client: named("OAuthClient"),
            scopes: me
                .get("authorizedScope")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_tokens_me_says_and_tolerates_what_it_leaves_out() {
        let me = TokenIdentity::from_json(&json!({
            "organization": {"id": "org-1", "name": "Acme"},
            "OAuthClient": {"name": "batch"},
            "authorizedScope": ["users:readonly", 7, "analytics"],
        }));
        assert_eq!(
            me.organization,
            Some(Named {
                id: Some("org-1".into()),
                name: Some("Acme".into())
            })
        );
        assert_eq!(
            me.oauth_client,
            Some(Named {
                id: None,
                name: Some("batch".into())
            })
        );
        assert_eq!(me.scopes, ["users:readonly", "analytics"]);
        assert_eq!(
            TokenIdentity::from_json(&json!({"authorizedScope": "x"})),
            TokenIdentity::default()
        );
    }
}
