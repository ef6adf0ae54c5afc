//! The OpenAPI 3.1 document of API v1, generated from the code: each handler carries its
//! `#[utoipa::path]`, the router is built from those handlers (so a route cannot exist
//! undocumented), and the bodies are the same types the handlers serialize. Served at
//! `GET /api/v1/openapi.json`.

use crate::views::{Deployment, ErrorBody};
use capstan_core::AppSpec;
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Capstan API",
        description = "Deploy, roll back and inspect apps on a Capstan server. Every endpoint but /health needs `Authorization: Bearer <token>`; a token's scopes (read, deploy, write, admin) decide what it may do, and a request outside them gets 403 naming the scope it needs. Errors are `{\"error\": \"...\"}` with a 4xx status (503 when the Docker engine is unreachable)."
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerToken),
    security(("token" = [])),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The settings object with extra fields added beside the `AppSpec` ones (the API puts
/// them at the same level); `required` lists the added fields that are always present.
fn app_spec_with(extra: &[(&str, RefOr<Schema>)], required: &[&str]) -> RefOr<Schema> {
    let RefOr::T(Schema::Object(mut object)) = AppSpec::schema() else {
        unreachable!("AppSpec is a struct, so its schema is an object")
    };
    for (name, schema) in extra {
        object
            .properties
            .insert((*name).to_string(), schema.clone());
    }
    object
        .required
        .extend(required.iter().map(|r| (*r).to_string()));
    RefOr::T(Schema::Object(object))
}

fn string(format: Option<&str>) -> RefOr<Schema> {
    let mut builder = ObjectBuilder::new().schema_type(Type::String);
    if let Some(format) = format {
        builder = builder.format(Some(utoipa::openapi::SchemaFormat::Custom(
            format.to_string(),
        )));
    }
    RefOr::T(Schema::Object(builder.build()))
}

/// An app as the API returns it: its settings, name, times and live deployment.
pub struct App;

impl PartialSchema for App {
    fn schema() -> RefOr<Schema> {
        let live = RefOr::T(Schema::OneOf(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .item(utoipa::openapi::Ref::from_schema_name("Deployment"))
                .build(),
        ));
        app_spec_with(
            &[
                ("name", string(None)),
                ("created_at", string(Some("date-time"))),
                ("updated_at", string(Some("date-time"))),
                ("live", live),
            ],
            &["name", "created_at", "updated_at", "live"],
        )
    }
}

impl ToSchema for App {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("App")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((AppSpec::name().into_owned(), AppSpec::schema()));
        <AppSpec as ToSchema>::schemas(schemas);
        schemas.push((Deployment::name().into_owned(), Deployment::schema()));
    }
}

/// The body that creates an app: its name and settings side by side.
pub struct NewApp;

impl PartialSchema for NewApp {
    fn schema() -> RefOr<Schema> {
        app_spec_with(&[("name", string(None))], &["name"])
    }
}

impl ToSchema for NewApp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("NewApp")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <AppSpec as ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_document_names_every_route_and_its_schemas() {
        let (_, _, api) = crate::api_router_and_doc();
        let json = serde_json::to_value(&api).unwrap();
        let paths = json["paths"].as_object().unwrap();
        for path in [
            "/health",
            "/apps",
            "/apps/{app}",
            "/apps/{app}/deployments",
            "/apps/{app}/rollback",
            "/apps/{app}/restart",
            "/apps/{app}/plan",
            "/apps/{app}/logs",
            "/apps/{app}/events",
            "/apps/{app}/usage",
            "/apps/{app}/certificates",
            "/apps/{app}/maintenance",
            "/apps/{app}/runs",
            "/apps/{app}/runs/{id}",
            "/apps/{app}/runs/{id}/output",
            "/apps/{app}/secrets",
            "/apps/{app}/secrets/{name}",
            "/server",
            "/server/cleanup",
            "/server/backups",
            "/servers",
            "/servers/{name}",
            "/deployments/{id}/retry",
            "/deployments/{id}/cancel",
            "/servers/{name}/check",
            "/servers/{name}/host-key",
            "/registry",
            "/tokens",
            "/tokens/{id}",
            "/users",
            "/users/{name}",
            "/deployments/{id}",
            "/deployments/{id}/logs",
            "/deployments/{id}/spec",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for name in [
            "App",
            "NewApp",
            "AppSpec",
            "Source",
            "Deployment",
            "ErrorBody",
            "Token",
            "Run",
            "NewRun",
            "Server",
            "ServerSpec",
            "ServerCheck",
            "Registry",
            "RegistryBody",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
        assert!(schemas["App"]["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("live")));
    }

    #[test]
    fn a_certificates_state_is_one_of_the_names_the_document_lists() {
        let (_, _, api) = crate::api_router_and_doc();
        let json = serde_json::to_value(&api).unwrap();
        let states = json["components"]["schemas"]["CertificateStateName"].to_string();
        for name in [
            "issued",
            "expired",
            "pending",
            "failed",
            "http_only",
            "not_served",
        ] {
            assert!(states.contains(&format!("\"{name}\"")), "{name}: {states}");
        }
    }
}
