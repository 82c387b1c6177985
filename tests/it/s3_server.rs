//! The test S3 server itself: it must refuse what it is there to refuse, or every test
//! that publishes to it proves nothing about signatures.

use gitauto_tests::s3::S3Server;

#[tokio::test]
async fn the_test_server_refuses_unsigned_and_falsely_signed_requests() {
    let mut server = S3Server::start(&["site"]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/site/page.html", server.endpoint());
    let unsigned = client.put(&url).body("<p>x</p>").send().await.unwrap();
    assert_eq!(unsigned.status(), 403, "{}", unsigned.text().await.unwrap());
    let forged = client
        .put(&url)
        .header("x-amz-date", "20261128T000000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/20261128/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
                gitauto_tests::s3::ACCESS_KEY,
                "0".repeat(64)
            ),
        )
        .body("<p>x</p>")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "{}", forged.text().await.unwrap());
    assert!(server.keys("site").is_empty(), "nothing stored: {:?}", server.keys("site"));
    assert!(server.is_running());
}
