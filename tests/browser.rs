//! The page at `/` in a real browser: headless Chromium from Debian's packages, driven over
//! WebDriver by chromedriver. Two tabs join one room and exchange messages, each shown with its
//! sender and latency; a connection the server drops comes back by itself; an oversized message
//! shows the error frame the server sent; a server that refuses the handshake gets the hint to
//! paste a token.
//!
//! It needs `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`;
//! `.ci/run` installs them); `CHROMIUM` and `CHROMEDRIVER` name other binaries. Without them
//! the test fails when `CI=true` and, elsewhere, passes after saying how to install them.
//! `BROWSER_TEST_SCREENSHOT=page.png` saves what the first tab shows after the error.

use e2e::{management, options, publisher};
use fanout::domain::{IdempotencyKey, RoomName, Target};
use fanout_local::LocalStack;
use fanout_test_support::http::request;
use fanout_test_support::net::{free_port, wait_for_port};
use fanout_test_support::ws::Client as WsClient;
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};
use wsfanout_ops::publish::{request_body, send};

/// The longest the page may take to show any one thing.
const WAIT: Duration = Duration::from_secs(15);
/// The whole scenario, browser start-up excluded (it takes a few seconds).
const WHOLE: Duration = Duration::from_secs(120);
/// The stack's `--max-data-bytes` here: the oversized message is just over it.
const MAX_DATA_BYTES: usize = 1024;
const ROOM: &str = "browsers";

/// Chromium and its driver, from `CHROMIUM` and `CHROMEDRIVER` or `PATH`.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The tools, or `None` (after saying how to install them) when they are missing outside CI.
fn tools() -> Option<Tools> {
    let chromium = find_program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        (chromium, chromedriver) => {
            let missing = [
                chromium.is_none().then_some("chromium"),
                chromedriver.is_none().then_some("chromedriver"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
            let message = format!(
                "the browser test needs {missing}: on Debian, `apt-get install chromium \
                 chromium-driver` (.ci/run does), or name the binaries in CHROMIUM and \
                 CHROMEDRIVER"
            );
            let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
            assert!(!in_ci, "{message}");
            eprintln!("SKIPPED (not in CI): {message}");
            None
        }
    }
}

/// chromedriver on a free loopback port, killed when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Chromedriver {
    async fn start(program: &Path) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create the chromedriver log");
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", program.display()));
        let driver = Self { child, port, log };
        let ready = tokio::task::spawn_blocking(move || wait_for_port(port, WAIT))
            .await
            .expect("wait for chromedriver");
        if let Err(error) = ready {
            panic!(
                "chromedriver did not listen: {error}\n{}",
                driver.log_text()
            );
        }
        driver
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A session of headless Chromium.
    async fn session(&self, chromium: &Path) -> Client {
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // CI runs as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-extensions",
                    // The tab not in front keeps its timers (the reconnection's backoff).
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows",
                    "--window-size=1200,900",
                ],
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver = format!("http://127.0.0.1:{}", self.port);
        let browser = match timeout(WAIT * 2, builder.connect(&webdriver)).await {
            Ok(Ok(browser)) => browser,
            Ok(Err(error)) => panic!(
                "no Chromium session: {error}\nchromedriver's log:\n{}",
                self.log_text()
            ),
            Err(_) => panic!(
                "no Chromium session after {:?}\nchromedriver's log:\n{}",
                WAIT * 2,
                self.log_text()
            ),
        };
        browser
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(5)),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the WebDriver timeouts");
        browser
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_chat_reconnect_and_see_the_servers_errors() {
    let stack = LocalStack::start_with(
        options(&["--max-data-bytes", &MAX_DATA_BYTES.to_string()]),
        None,
    )
    .await
    .expect("start the local stack");
    in_browser(|browser| async move { scenario(&browser, stack).await }).await;
}

/// Starts Chromium under its driver, runs `body` on a session within [`WHOLE`], and ends the
/// session and the driver whatever happened. Without the tools, returns at once (`tools`).
async fn in_browser<F, Fut>(body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(tools) = tools() else { return };
    let started = Instant::now();
    let driver = Chromedriver::start(&tools.chromedriver).await;
    let browser = driver.session(&tools.chromium).await;
    let browser_up = started.elapsed();

    let outcome = AssertUnwindSafe(timeout(WHOLE, body(browser.clone())))
        .catch_unwind()
        .await;
    // The session ends (Chromium quits) whatever happened, then chromedriver is killed.
    let _ = timeout(WAIT, browser.close()).await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => eprintln!(
            "browser test: {:.1?} in all, {browser_up:.1?} of it starting Chromium",
            started.elapsed()
        ),
        Ok(Err(_)) => panic!("the browser scenario took longer than {WHOLE:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// API Gateway cuts idle connections and every connection at its maximum duration. With those
/// set to seconds, a page in a room for a minute, sending now and then while a backend
/// publishes four messages a second, is cut over and over: it shows every message once, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_rides_through_the_idle_and_duration_cuts_for_a_minute() {
    const FOR: Duration = Duration::from_secs(60);
    let stack = LocalStack::start_with(
        options(&["--idle-timeout", "4s", "--max-connection-duration", "9s"]),
        None,
    )
    .await
    .expect("start the local stack");
    in_browser(|browser| async move {
        browser
            .goto(&format!("http://{}/?room=cuts", stack.addr()))
            .await
            .expect("open the page");
        until_state(&browser, "open", "the page is connected").await;
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let started = Instant::now();
        let (mut published, mut sent) = (Vec::new(), 0_u32);
        let mut next_page_send = started;
        while started.elapsed() < FOR {
            let data = format!("\"pub {}\"", published.len() + 1);
            let key = IdempotencyKey::parse(&format!("cuts-{}", published.len() + 1)).unwrap();
            let body =
                request_body(&Target::Room(RoomName::parse("cuts").unwrap()), &data, &key).unwrap();
            let answer = send(&sdk, Some(&publisher()), &stack.publish_url(), body)
                .await
                .expect("publish");
            published.push(answer.offset.expect("an offset"));
            if Instant::now() >= next_page_send {
                // The page sends too, when it is connected (a send while it reconnects is
                // refused by the page itself, and tried again at the next turn); spaced so
                // that the idle timeout still cuts it between sends.
                let went = browser
                    .execute(
                        "if (document.getElementById('state').dataset.state !== 'open') return false;
                         const field = document.getElementById('message');
                         field.value = arguments[0];
                         document.getElementById('send').click();
                         return field.value === '';",
                        vec![json!(format!("page {}", sent + 1))],
                    )
                    .await
                    .unwrap();
                if went == json!(true) {
                    sent += 1;
                    next_page_send = Instant::now() + Duration::from_secs(6);
                }
            }
            sleep(Duration::from_millis(250)).await;
        }
        let expected = published.len();
        let shown = until(
            &browser,
            "the page shows every published message",
            "const shown = [...document.querySelectorAll('#messages li.message .data')]
               .map((d) => d.textContent);
             const published = shown.filter((t) => t.startsWith('pub '));
             return published.length >= arguments[0] ? shown : null;",
            vec![json!(expected)],
        )
        .await;
        let shown: Vec<String> = serde_json::from_value(shown).unwrap();
        let pubs: Vec<&String> = shown.iter().filter(|t| t.starts_with("pub ")).collect();
        let numbered: Vec<String> = (1..=expected).map(|n| format!("pub {n}")).collect();
        assert_eq!(
            pubs,
            numbered.iter().collect::<Vec<_>>(),
            "every published message, once, in order"
        );
        let pages: Vec<&String> = shown.iter().filter(|t| t.starts_with("page ")).collect();
        let unique: std::collections::BTreeSet<&&String> = pages.iter().collect();
        assert_eq!(
            unique.len(),
            pages.len(),
            "the page's own messages once each: {pages:?}"
        );
        assert!(pages.len() <= sent as usize, "{pages:?} of {sent}");
        assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
        let cuts = browser
            .execute(
                "return [...document.querySelectorAll('#log li')]
                   .filter((e) => e.textContent.includes('(1001')).length;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            cuts.as_u64().is_some_and(|n| n >= 5),
            "cut at least 5 times in a minute: {cuts}"
        );
        let banner_hidden = browser
            .execute(
                "return document.getElementById('history-banner').hidden;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(banner_hidden, true, "nothing was lost");
        eprintln!(
            "{expected} published and {} of the page's {sent} shown across {cuts} cuts",
            pages.len()
        );
        stack.shutdown().await;
    })
    .await;
}

/// Without a browser: `/` is the page for a plain GET and still the WebSocket API for an
/// upgrade; the script and style are served beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_serves_the_page_and_still_upgrades() {
    let stack = LocalStack::start_with(options(&[]), None)
        .await
        .expect("start the local stack");
    let page = request(stack.addr(), "GET", "/?room=lobby", "")
        .await
        .expect("GET /");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<meta name="fanout-stage" content="local">"#),
        "{}",
        page.body
    );
    for asset in ["/app.js", "/fanout-client.js", "/app.css"] {
        let response = request(stack.addr(), "GET", asset, "").await.unwrap();
        assert_eq!(response.status, 200, "{asset}");
        assert!(!response.body.is_empty(), "{asset}");
    }

    let mut socket = WsClient::connect(&format!("ws://{}/?room=lobby", stack.addr())).await;
    socket.say(json!("over the root")).await;
    assert_eq!(socket.next_json(WAIT).await["type"], "ack");
    assert_eq!(socket.next_json(WAIT).await["data"], "over the root");
    stack.shutdown().await;
}

/// The client rule's property, run in the page against its own `fanout-client.js`.
const CLIENT_RULE: &str = include_str!("client_rule.js");

async fn scenario(browser: &Client, stack: LocalStack) {
    let page = format!("http://{}/?room={ROOM}", stack.addr());

    // Two tabs open the page on the room; each connects by itself.
    browser.goto(&page).await.expect("open the page");
    let alice = browser.window().await.expect("the first tab");
    until_state(browser, "open", "the first tab is connected").await;
    assert_only_this_origin(browser, &page).await;

    // The reference client's rule, as the page runs it, under 300 random schedules of sends
    // (some failing), reordered, repeated and lost deliveries, drops and recoveries.
    let broken = browser
        .execute(CLIENT_RULE, vec![json!(300), json!(1)])
        .await
        .expect("run the client rule's schedules");
    assert_eq!(broken, Value::Null, "a schedule the rule got wrong");
    let bob = browser.new_window(true).await.expect("a second tab").handle;
    browser.switch_to_window(bob.clone()).await.unwrap();
    browser.goto(&page).await.expect("open the page again");
    until_state(browser, "open", "the second tab is connected").await;

    // Alice types and presses Enter; her own message comes back, which tells her page her id.
    browser.switch_to_window(alice.clone()).await.unwrap();
    type_into(browser, "#message", "hello from alice <b>&amp;</b>\u{E007}").await;
    let alice_id = my_id(browser, "Alice's page learns her connection id").await;
    let own = until_message(browser, "hello from alice <b>&amp;</b>").await;
    assert_eq!(own["from"], alice_id.as_str(), "{own}");
    assert_eq!(own["mine"], true, "{own}");

    // Bob's tab shows it, as text, from Alice, with a latency.
    browser.switch_to_window(bob.clone()).await.unwrap();
    let seen = until_message(browser, "hello from alice <b>&amp;</b>").await;
    assert_eq!(seen["from"], alice_id.as_str(), "{seen}");
    assert_eq!(seen["mine"], false, "{seen}");
    assert_eq!(seen["room"], format!("#{ROOM}"), "{seen}");
    assert_latency(&seen);
    assert_eq!(
        browser
            .execute(
                "return document.querySelectorAll('#messages b').length",
                vec![]
            )
            .await
            .unwrap(),
        0,
        "message text must not become markup"
    );

    // Bob answers with the Send button, as JSON; Alice sees it from him.
    type_into(browser, "#message", r#"{"text":"hi alice"}"#).await;
    click(browser, "#as-json").await;
    click(browser, "#send").await;
    let bob_id = my_id(browser, "Bob's page learns his connection id").await;
    assert_ne!(bob_id, alice_id);

    // An invalid room name is refused on the page; the connection stays.
    let room = browser.find(Locator::Css("#room")).await.unwrap();
    room.clear().await.unwrap();
    room.send_keys("no spaces\u{E007}").await.unwrap();
    until(
        browser,
        "the page refuses the room name",
        "const log = document.getElementById('log').textContent;
         return log.includes('invalid room') ? true : null;",
        vec![],
    )
    .await;
    until_state(browser, "open", "the connection stays open").await;

    // Bob pastes a token and joins again: it goes with the connection, and is kept in the tab.
    room.clear().await.unwrap();
    room.send_keys(ROOM).await.unwrap();
    type_into(browser, "#token", "a.b.c").await;
    click(browser, "#join").await;
    until_state(browser, "open", "Bob's page reconnects with the token").await;
    let state = browser
        .execute(
            "return [document.getElementById('endpoint').textContent,
                     sessionStorage.getItem('fanout-local.token')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        state,
        json!([
            format!("ws://{}/local?room={ROOM}&token=…", stack.addr()),
            "a.b.c"
        ])
    );

    browser.switch_to_window(alice.clone()).await.unwrap();
    let reply = until_message(browser, r#"{"text":"hi alice"}"#).await;
    assert_eq!(reply["from"], bob_id.as_str(), "{reply}");
    assert_latency(&reply);

    // The server drops Alice (DELETE @connections/{id}): her page says so, counts down, and
    // reconnects by itself; the new connection delivers again, and what Carol sent while
    // Alice was away is recovered: every message, in order, once.
    let mut carol =
        fanout_test_support::ws::Client::connect(&format!("{}?room={ROOM}", stack.websocket_url()))
            .await;
    let deleted = management(&stack, "DELETE", &alice_id, "").await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    until(
        browser,
        "Alice's page shows the drop and when it retries",
        "const s = document.getElementById('state');
         const d = document.getElementById('state-detail').textContent;
         return s.dataset.state === 'closed' && /retry in \\d+ s/.test(d) ? d : null;",
        vec![],
    )
    .await;
    for n in 1..=3 {
        carol.say(json!(format!("while away {n}"))).await;
    }
    // Carol's own copies: once she has all three, so has everyone connected.
    let mut copies = 0;
    while copies < 3 {
        if carol.next_json(WAIT).await["type"] == "message" {
            copies += 1;
        }
    }
    let away_throughout = browser
        .execute(
            "return document.getElementById('state').dataset.state === 'closed';",
            vec![],
        )
        .await
        .unwrap()
        == json!(true);
    until_state(browser, "open", "Alice's page reconnects").await;
    until(
        browser,
        "Alice's page shows what was sent while she was away, in order, once",
        "const shown = [...document.querySelectorAll('#messages li.message .data')]
           .map((d) => d.textContent).filter((t) => t.startsWith('while away'));
         return shown.length >= 3 ? shown : null;",
        vec![],
    )
    .await;
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#messages li.message .data')]
               .map((d) => d.textContent).filter((t) => t.startsWith('while away'));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!(["while away 1", "while away 2", "while away 3"]),
        "in order, once"
    );
    let recovered = until(
        browser,
        "Alice's page says what it recovered",
        "const entries = [...document.querySelectorAll('#log li.recovered')];
         return entries.length >= 2 ? entries.map((e) => e.textContent) : null;",
        vec![],
    )
    .await;
    if away_throughout {
        // Nothing reached her live: the reconnection's recovery brought all three.
        let last = recovered.as_array().and_then(|all| all.last()).cloned();
        assert!(
            last.as_ref()
                .and_then(Value::as_str)
                .is_some_and(|entry| entry.ends_with("recovered 3 messages")),
            "{recovered}"
        );
    }
    let banner_hidden = browser
        .execute(
            "return document.getElementById('history-banner').hidden;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(banner_hidden, true, "nothing was lost");
    type_into(browser, "#message", "back again\u{E007}").await;
    let new_id = my_id(browser, "Alice's page learns her new connection id").await;
    assert_ne!(new_id, alice_id, "a reconnection is a new connection");
    let earlier = until_message(browser, "hello from alice <b>&amp;</b>").await;
    assert_eq!(earlier["mine"], true, "still hers: {earlier}");
    browser.switch_to_window(bob.clone()).await.unwrap();
    assert_eq!(until_message(browser, "back again").await["from"], new_id);

    // An oversized message: the page shows the error frame the server sent.
    browser.switch_to_window(alice.clone()).await.unwrap();
    browser
        .execute(
            "document.getElementById('message').value = 'x'.repeat(arguments[0]);",
            vec![json!(MAX_DATA_BYTES)],
        )
        .await
        .unwrap();
    click(browser, "#send").await;
    until(
        browser,
        "the page shows message_too_large",
        "const e = document.getElementById('send-error');
         return e.hidden ? null : e.dataset.code;",
        vec![],
    )
    .await;
    let error = browser.find(Locator::Css("#send-error")).await.unwrap();
    assert!(error.is_displayed().await.unwrap(), "the error is visible");
    let shown = error.text().await.unwrap();
    // The JSON string is the text and its two quotes.
    let expected = format!(
        "\"data\" is {} bytes of JSON; the limit is {MAX_DATA_BYTES}",
        MAX_DATA_BYTES + 2
    );
    assert!(
        shown.contains("message_too_large") && shown.contains(&expected),
        "the page shows {shown:?}"
    );
    if let Some(path) = std::env::var_os("BROWSER_TEST_SCREENSHOT") {
        let png = browser.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("write the screenshot");
    }

    // A server that refuses the handshake (here: gone) gets the hint to paste a token.
    stack.shutdown().await;
    let hint = until(
        browser,
        "the page suggests a token after a refused handshake",
        "const s = document.getElementById('state').dataset.state;
         const h = document.getElementById('token-hint');
         return s === 'refused' && !h.hidden ? h.textContent : null;",
        vec![],
    )
    .await;
    assert!(
        hint.as_str().is_some_and(|text| text.contains("token")),
        "{hint}"
    );
    let token = browser.find(Locator::Css("#token")).await.unwrap();
    assert_eq!(
        token.attr("class").await.unwrap().as_deref(),
        Some("needed")
    );
}

/// Runs `script` every 50 ms until it returns something other than null, for at most `WAIT`.
async fn until(browser: &Client, what: &str, script: &str, args: Vec<Value>) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = browser
            .execute(script, args.clone())
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        if !value.is_null() {
            return value;
        }
        if Instant::now() >= deadline {
            let text = browser
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "timed out after {WAIT:?} waiting until {what}; the page shows:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
}

async fn until_state(browser: &Client, state: &str, what: &str) {
    until(
        browser,
        what,
        "return document.getElementById('state').dataset.state === arguments[0] ? true : null;",
        vec![json!(state)],
    )
    .await;
}

/// The page's own connection id, once it knows it.
async fn my_id(browser: &Client, what: &str) -> String {
    let id = until(
        browser,
        what,
        "const me = document.getElementById('me');
         return me.dataset.known === 'true' ? me.textContent : null;",
        vec![],
    )
    .await;
    id.as_str().expect("an id").to_owned()
}

/// The message whose text is `data`, as the page shows it.
async fn until_message(browser: &Client, data: &str) -> Value {
    until(
        browser,
        &format!("the page shows the message {data:?}"),
        "for (const li of document.querySelectorAll('#messages li.message')) {
           if (li.querySelector('.data').textContent !== arguments[0]) continue;
           const latency = li.querySelector('.latency');
           const room = li.querySelector('.room');
           return {
             from: li.querySelector('.from').textContent,
             mine: li.classList.contains('mine'),
             room: room ? room.textContent : null,
             latency: latency ? latency.textContent : null,
           };
         }
         return null;",
        vec![json!(data)],
    )
    .await
}

/// `N ms`, from `sentAt` to now, within the time the test waits.
fn assert_latency(message: &Value) {
    let text = message["latency"].as_str().unwrap_or_default();
    let ms: i64 = text
        .strip_suffix(" ms")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no latency in {message}"));
    assert!((0..WAIT.as_millis() as i64).contains(&ms), "{message}");
}

/// Everything the page loaded came from the page's own server.
async fn assert_only_this_origin(browser: &Client, page: &str) {
    let origin = page.split("/?").next().unwrap();
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let loaded = loaded.as_array().expect("a list of URLs");
    assert!(!loaded.is_empty(), "the page loads its script and style");
    for url in loaded {
        let url = url.as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("{origin}/")), "loaded {url}");
    }
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("find {css}: {error}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|error| panic!("type into {css}: {error}"));
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("find {css}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {css}: {error}"));
}
