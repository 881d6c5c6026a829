//! deploy/compose and deploy/kubernetes, checked statically (no Docker engine or cluster runs on
//! the project's machines): each file is validated by a real tool (Debian's docker-compose,
//! PyPI's kubernetes-validate with the Kubernetes API schemas, promtool), then checked against
//! the code: the commands are touchstream's subcommands, the configuration loads, and ports,
//! topics, scrape targets, mounts and labels agree with each other.

mod common;

use common::deploy::{ROOT, image_environment, image_user, read, run, tool, yaml, yaml_documents};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use touchstream::config::Config;

const COMPOSE: &str = "deploy/compose/compose.yaml";
const KUBERNETES: &str = "deploy/kubernetes";

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| str_of(s).to_string()).collect())
        .unwrap_or_default()
}

/// `touchstream <subcommand> --help` succeeds: the subcommand exists.
fn assert_subcommand(subcommand: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_touchstream"))
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`touchstream {subcommand}` is not a subcommand"
    );
}

/// The configuration a container runs with: the image's environment, then `env`, and the
/// configuration file `file` if any.
fn container_config(file: Option<&str>, env: &[(String, String)]) -> Config {
    let mut all = image_environment();
    all.extend(env.iter().cloned());
    let loaded = match file {
        Some(text) => touchstream::config::load_str(text, "the mounted file", all),
        None => touchstream::config::load(None, all),
    };
    loaded.unwrap_or_else(|e| panic!("the container's configuration does not load: {e}"))
}

fn host_port(address: &str) -> (String, u16) {
    let (host, port) = address
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address} is not host:port"));
    (host.to_string(), port.parse().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Compose

/// The compose file as docker-compose resolves it (anchors merged, variables and paths filled).
fn compose() -> Value {
    let (resolved, _) = run("docker-compose", &["-f", COMPOSE, "config"]);
    yaml_documents(&resolved).remove(0)
}

/// The touchstream services: (name, service, subcommand, configuration).
fn touchstream_services(compose: &Value) -> Vec<(String, Value, String, Config)> {
    compose["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["image"] == "touchstream:latest")
        .map(|(name, s)| {
            let env: Vec<(String, String)> = s["environment"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), str_of(v).to_string()))
                .collect();
            let command = strings(&s["command"]).join(" ");
            (
                name.clone(),
                s.clone(),
                command,
                container_config(None, &env),
            )
        })
        .collect()
}

#[test]
fn compose_file_is_valid_and_runs_touchstream_as_the_code_expects() {
    tool("docker-compose", &["-f", COMPOSE, "config", "--quiet"]);
    let compose = compose();
    let services = &compose["services"];
    let ours = touchstream_services(&compose);
    let names: BTreeSet<&str> = ours.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["collect", "engine-1", "engine-2"]),
        "one collector, two engines"
    );
    let kafka_topics = strings(&services["kafka-topics"]["command"]).join(" ");
    let engines = ours.iter().filter(|(_, _, c, _)| c == "engine").count();
    // Each engine a static member of its own: two sharing an id would fence each other out.
    let ids: BTreeSet<Option<&str>> = (ours.iter())
        .filter(|(_, _, c, _)| c == "engine")
        .map(|(_, _, _, config)| config.kafka.instance_id())
        .collect();
    assert_eq!(ids.len(), engines, "{ids:?}");
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    for (name, service, command, config) in &ours {
        // Built from this repository's Dockerfile, running a real subcommand.
        let context = Path::new(str_of(&service["build"]["context"]));
        assert_eq!(
            context.canonicalize().unwrap(),
            Path::new(ROOT).canonicalize().unwrap()
        );
        assert_eq!(service["build"]["dockerfile"], "Dockerfile");
        assert_subcommand(command);
        // Brokers are the Kafka service on a listener it advertises to the other containers.
        for broker in config.kafka.brokers.split(',') {
            let (host, port) = host_port(broker);
            let advertised = str_of(&services[&host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]);
            assert!(
                advertised.contains(&format!("//{host}:{port}")),
                "{name}: broker {broker} is not advertised ({advertised})"
            );
        }
        // Topics are created by kafka-topics (before touchstream starts), with a partition
        // for every engine.
        assert!(
            !config.kafka.create_topics,
            "{name}: kafka-topics creates the topics"
        );
        assert_eq!(
            service["depends_on"]["kafka-topics"]["condition"],
            "service_completed_successfully"
        );
        for topic in [&config.kafka.topic, &config.kafka.dead_letter_topic] {
            assert!(
                kafka_topics.contains(topic.as_str()),
                "{topic} is not created"
            );
        }
        let partitions: usize = kafka_topics
            .split("--partitions ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("kafka-topics gives --partitions");
        assert!(partitions >= engines);
        // The collector publishes its public port, and nothing publishes the admin port.
        let published: Vec<u64> = service["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["target"].as_u64().unwrap())
            .collect();
        let expected = if command == "collect" {
            vec![u64::from(config.listen.port())]
        } else {
            vec![]
        };
        assert_eq!(published, expected, "{name}: published ports");
    }
    // Third-party images are pinned.
    for (name, service) in services.as_object().unwrap() {
        let image = str_of(&service["image"]);
        if image != "touchstream:latest" {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            assert!(tag != "latest", "{name}: pin {image} to a version");
        }
    }
}

/// The host directory mounted at `target` in `service` (`source:target[:mode]`, as
/// docker-compose writes volumes).
fn mount_source(service: &Value, target: &str) -> String {
    service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| str_of(v).split(':').collect::<Vec<_>>())
        .find(|parts| parts.get(1) == Some(&target))
        .map(|parts| parts[0].to_string())
        .unwrap_or_else(|| panic!("nothing is mounted at {target}"))
}

#[test]
fn compose_wires_prometheus_alertmanager_and_grafana_to_the_deploy_files() {
    let compose = compose();
    let services = &compose["services"];
    let ours = touchstream_services(&compose);
    let deploy = Path::new(ROOT).join("deploy").canonicalize().unwrap();
    let mounted = |service: &str, target: &str| {
        Path::new(&mount_source(&services[service], target))
            .canonicalize()
            .unwrap()
    };

    // Prometheus loads deploy/prometheus, whose targets are the compose services.
    assert_eq!(
        mounted("prometheus", "/etc/prometheus"),
        deploy.join("prometheus")
    );
    assert!(
        strings(&services["prometheus"]["command"])
            .contains(&"--config.file=/etc/prometheus/prometheus.yml".to_string())
    );
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_array().unwrap() {
        for target in job["static_configs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| strings(&c["targets"]))
        {
            let (host, port) = host_port(&target);
            let (_, _, _, config) = ours
                .iter()
                .find(|(n, ..)| *n == host)
                .unwrap_or_else(|| panic!("scrape target {target} is not a touchstream service"));
            assert_eq!(port, config.admin_listen.port(), "{target}: the admin port");
            scraped.insert(host);
        }
    }
    let all: BTreeSet<String> = ours.iter().map(|(n, ..)| n.clone()).collect();
    assert_eq!(scraped, all, "every touchstream service is scraped");
    let alertmanagers: Vec<String> = prometheus["alerting"]["alertmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["static_configs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| strings(&c["targets"]))
        })
        .collect();
    for target in alertmanagers {
        let (host, port) = host_port(&target);
        assert!(services[&host].is_object(), "{target} is not a service");
        assert_eq!(port, 9093, "Alertmanager's port");
    }

    // Alertmanager reads deploy/alertmanager.
    assert_eq!(
        mounted("alertmanager", "/etc/alertmanager"),
        deploy.join("alertmanager")
    );
    assert!(deploy.join("alertmanager/alertmanager.yml").is_file());

    // Grafana: provisioning from deploy/grafana, the dashboards where the provider looks, and
    // the data source is the Prometheus service.
    assert_eq!(
        mounted("grafana", "/etc/grafana/provisioning"),
        deploy.join("grafana/provisioning")
    );
    let provider = yaml("deploy/grafana/provisioning/dashboards/touchstream.yml");
    let dashboards_at = str_of(&provider["providers"][0]["options"]["path"]);
    assert_eq!(
        mounted("grafana", dashboards_at),
        deploy.join("grafana/dashboards")
    );
    let home =
        str_of(&services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    assert_eq!(home, format!("{dashboards_at}/touchstream.json"));
    let datasources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    let (host, port) = host_port(str_of(&source["url"]));
    assert!(
        services[&host]["image"]
            .as_str()
            .unwrap()
            .starts_with("prom/prometheus:")
    );
    assert_eq!(port, 9090, "Prometheus's port");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// Every document of every manifest in deploy/kubernetes but the kustomization.
fn manifests() -> Vec<Value> {
    kustomization_resources()
        .iter()
        .flat_map(|file| yaml_documents(&read(&format!("{KUBERNETES}/{file}"))))
        .collect()
}

fn kustomization_resources() -> Vec<String> {
    strings(&yaml(&format!("{KUBERNETES}/kustomization.yaml"))["resources"])
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels[k] == *v)
}

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    // The kustomization lists every manifest in the directory.
    let mut listed = kustomization_resources();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(format!("{ROOT}/{KUBERNETES}"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(listed, present, "kustomization.yaml resources");
    let files: Vec<String> = listed.iter().map(|f| format!("{KUBERNETES}/{f}")).collect();
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    tool("python3", &args);
    for doc in manifests() {
        if doc["kind"] != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"], "touchstream",
                "{}",
                doc["metadata"]["name"]
            );
        }
    }
}

/// The (subcommand, configuration) a Deployment's container runs with.
fn deployment_config(docs: &[Value], deployment: &Value) -> (String, Config) {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    let [flag, path, subcommand] = args.as_slice() else {
        panic!("args are --config FILE SUBCOMMAND: {args:?}");
    };
    assert_eq!(flag, "--config");
    assert_subcommand(subcommand);
    // The file comes from a ConfigMap volume mounted at its directory.
    let (dir, file) = path.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let map = find(docs, "ConfigMap", str_of(&volume["configMap"]["name"]));
    let text = str_of(&map["data"][file]);
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| str_of(&e["name"]).starts_with("TOUCHSTREAM_"))
        .map(|e| {
            // The downward API's pod name, as Kubernetes fills it in.
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => "touchstream-engine-0",
                Some(other) => panic!("no stand-in for {other}"),
                None => str_of(&e["value"]),
            };
            (str_of(&e["name"]).to_string(), value.to_string())
        })
        .collect();
    (subcommand.clone(), container_config(Some(text), &env))
}

#[test]
fn kubernetes_deployments_services_and_autoscaling_match_the_code() {
    let docs = manifests();
    // The collectors a Deployment, the engines a StatefulSet: their pod names are their static
    // member ids in the group, stable across restarts.
    let deployments: Vec<&Value> = (docs.iter())
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .collect();
    assert_eq!(deployments.len(), 2);
    let mut roles = BTreeSet::new();
    for deployment in &deployments {
        let name = str_of(&deployment["metadata"]["name"]);
        let template = &deployment["spec"]["template"];
        assert!(selects(
            &deployment["spec"]["selector"]["matchLabels"],
            &template["metadata"]["labels"]
        ));
        let (subcommand, config) = deployment_config(&docs, deployment);
        roles.insert(subcommand.clone());
        let pod = &template["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_u64(),
            Some(image_user())
        );
        // Container ports are the configured listeners; probes ask the admin listener.
        let ports: Vec<(String, u16)> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    str_of(&p["name"]).to_string(),
                    p["containerPort"].as_u64().unwrap() as u16,
                )
            })
            .collect();
        let mut expected = vec![("admin".to_string(), config.admin_listen.port())];
        if subcommand == "collect" {
            expected.insert(0, ("http".to_string(), config.listen.port()));
        }
        assert_eq!(ports, expected, "{name}: container ports");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(container[probe]["httpGet"]["port"], "admin");
        }
        // Kafka: engines no more than partitions; the collector scaled by an autoscaler.
        assert!(
            !config.kafka.brokers.is_empty(),
            "{name}: brokers configured"
        );
        let autoscaler = docs.iter().find(|d| {
            d["kind"] == "HorizontalPodAutoscaler" && d["spec"]["scaleTargetRef"]["name"] == name
        });
        match subcommand.as_str() {
            "engine" => {
                assert_eq!(
                    deployment["kind"], "StatefulSet",
                    "{name}: stable member ids"
                );
                let service = find(&docs, "Service", str_of(&deployment["spec"]["serviceName"]));
                assert_eq!(service["spec"]["clusterIP"], "None", "a headless Service");
                assert_eq!(
                    config.kafka.instance_id().map(str::to_string),
                    Some("touchstream-engine-0".to_string()),
                    "{name}: its pod's name is its member id"
                );
                let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
                assert!(
                    replicas <= config.kafka.partitions as u64,
                    "an engine per partition at most"
                );
                assert!(
                    autoscaler.is_none(),
                    "engines are sized to partitions, not autoscaled"
                );
            }
            _ => assert!(autoscaler.is_some(), "{name} is autoscaled"),
        }
    }
    assert_eq!(
        roles,
        BTreeSet::from(["collect".to_string(), "engine".to_string()])
    );
    // Each Service selects a Deployment's pods and targets a port they name.
    for service in docs.iter().filter(|d| d["kind"] == "Service") {
        let name = str_of(&service["metadata"]["name"]);
        let target = deployments
            .iter()
            .find(|d| {
                selects(
                    &service["spec"]["selector"],
                    &d["spec"]["template"]["metadata"]["labels"],
                )
            })
            .unwrap_or_else(|| panic!("Service {name} selects no Deployment"));
        let names: Vec<&Value> = target["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["name"])
            .collect();
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert!(
                names.contains(&&port["targetPort"]),
                "{name}: targetPort {}",
                port["targetPort"]
            );
        }
    }
}

#[test]
fn kubernetes_scrape_configuration_is_valid_and_selects_every_touchstream_pod() {
    let docs = manifests();
    let map = find(&docs, "ConfigMap", "touchstream-prometheus");
    let text = str_of(&map["data"]["prometheus.yml"]);
    let config = yaml_documents(text).remove(0);
    let job = &config["scrape_configs"][0];
    let discovery = &job["kubernetes_sd_configs"][0];
    assert_eq!(discovery["role"], "pod");
    assert_eq!(strings(&discovery["namespaces"]["names"]), ["touchstream"]);
    // Debian's Prometheus is built without Kubernetes discovery, so promtool checks the rest of
    // the file (relabelling included) with the discovery swapped for a static target.
    let checkable = text.replace(
        "kubernetes_sd_configs:\n      - role: pod\n        namespaces:\n          names: [touchstream]",
        "static_configs:\n      - targets: ['pod:9464']",
    );
    assert_ne!(
        checkable, text,
        "the discovery block is where this test expects it"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, checkable).unwrap();
    tool(
        "promtool",
        &["check", "config", "--syntax-only", file.to_str().unwrap()],
    );
    // The keep rules select every Deployment's pods on their admin port.
    let keep = |source: &str| -> String {
        job["relabel_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "keep" && strings(&r["source_labels"]) == [source])
            .map(|r| str_of(&r["regex"]).to_string())
            .unwrap_or_else(|| panic!("no keep rule on {source}"))
    };
    let part_of = keep("__meta_kubernetes_pod_label_app_kubernetes_io_part_of");
    let port = keep("__meta_kubernetes_pod_container_port_name");
    for deployment in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let pod = &deployment["spec"]["template"];
        assert_eq!(
            str_of(&pod["metadata"]["labels"]["app.kubernetes.io/part-of"]),
            part_of
        );
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert!(
            ports
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == port.as_str())
        );
    }
    // The rules it loads are deploy/prometheus/rules.yml, mounted by the operator.
    assert!(strings(&config["rule_files"])[0].ends_with("/rules.yml"));
}
