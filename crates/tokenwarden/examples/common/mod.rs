//! What each example starts with: a client for the embedded simulator, signed in with the
//! simulator's default client credentials. Against Genesys Cloud, the token URL and the API base
//! come from a region (`Region::parse("eu-west-1")?`) and the credentials are your OAuth client's.

use tokenwarden::{ApiClient, ClientCredentials, ClientSecret, TokenEndpoint, TokenManager};
use tokenwarden_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Simulator};

/// An API client for `sim` and the token manager it takes its tokens from (a clone: its metrics
/// say how many tokens the run fetched).
pub(crate) fn sim_client(sim: &Simulator) -> Result<(ApiClient, TokenManager), tokenwarden::Error> {
    let grant = ClientCredentials::new(
        TokenEndpoint::new(&sim.token_url())?,
        DEFAULT_CLIENT_ID,
        ClientSecret::new(DEFAULT_CLIENT_SECRET),
    );
    let tokens = TokenManager::builder(grant).build();
    let client = ApiClient::builder(&sim.base_url(), tokens.clone()).build()?;
    Ok((client, tokens))
}
