"""The demo catalog `flask seed-demo` loads: instructors, courses, lessons, coupons."""
from __future__ import annotations

INSTRUCTORS = [
    {"name": "林晓 Lin Xiao", "rate_bps": 7000,
     "bio_zh": "前大型互联网公司后端架构师，十年分布式系统经验。",
     "bio_en": "Former backend architect at a large internet company; ten years of distributed systems."},
    {"name": "陈思远 Chen Siyuan", "rate_bps": 6500,
     "bio_zh": "数据科学家，专注机器学习工程化。",
     "bio_en": "Data scientist focused on putting machine learning into production."},
    {"name": "王雅 Wang Ya", "rate_bps": 7000,
     "bio_zh": "独立设计师，为多家创业公司打造品牌与产品体验。",
     "bio_en": "Independent designer who built brands and products for many start-ups."},
    {"name": "Emily Zhou 周怡", "rate_bps": 6000,
     "bio_zh": "双语讲师，雅思口语考官。",
     "bio_en": "Bilingual teacher and former IELTS speaking examiner."},
]

# Time-limited demo courses (app/renewal): slug -> (days of access, renewal price fen).
ACCESS_PERIODS = {"distributed-systems": (365, 14900), "mlops": (365, 19900)}

# (slug, instructor index, zh title, en title, price fen, zh summary, en summary, colours)
COURSES = [
    ("python-basics", 0, "Python 零基础入门", "Python from Zero", 9900,
     "从变量到函数，十小时写出第一个实用脚本。", "From variables to functions: your first useful script in ten hours.",
     ("#2563eb", "#1e3a8a")),
    ("flask-web", 0, "Flask Web 开发实战", "Practical Flask Web Development", 19900,
     "用 Flask 搭建一个完整的网站：表单、数据库、登录、部署。", "Build a complete site with Flask: forms, database, login, deployment.",
     ("#0ea5e9", "#075985")),
    ("distributed-systems", 0, "分布式系统设计", "Designing Distributed Systems", 29900,
     "一致性、幂等、消息队列与故障恢复。", "Consistency, idempotency, message queues and recovering from failure.",
     ("#7c3aed", "#4c1d95")),
    ("postgres-internals", 0, "PostgreSQL 原理与调优", "PostgreSQL Internals and Tuning", 24900,
     "索引、事务隔离、执行计划与调优实践。", "Indexes, isolation levels, query plans and tuning in practice.",
     ("#0891b2", "#164e63")),
    ("ml-intro", 1, "机器学习入门", "Introduction to Machine Learning", 19900,
     "线性模型、决策树与模型评估，配套练习。", "Linear models, decision trees and model evaluation, with exercises.",
     ("#16a34a", "#14532d")),
    ("data-analysis", 1, "用 Pandas 做数据分析", "Data Analysis with Pandas", 12900,
     "清洗、汇总、可视化真实业务数据。", "Clean, aggregate and chart real business data.",
     ("#65a30d", "#365314")),
    ("mlops", 1, "机器学习工程化 MLOps", "MLOps: Machine Learning in Production", 39900,
     "训练流水线、模型服务与监控。", "Training pipelines, model serving and monitoring.",
     ("#059669", "#064e3b")),
    ("ui-design", 2, "UI 设计基础", "Foundations of UI Design", 14900,
     "排版、色彩、栅格与组件系统。", "Typography, colour, grids and component systems.",
     ("#db2777", "#831843")),
    ("brand-identity", 2, "品牌视觉设计", "Brand Identity Design", 16900,
     "从策略到标志：完整的品牌设计流程。", "From strategy to logo: the whole brand design process.",
     ("#ea580c", "#7c2d12")),
    ("ux-research", 2, "用户研究方法", "UX Research Methods", 10000,
     "访谈、可用性测试与洞察整理。", "Interviews, usability tests and synthesising insight.",
     ("#f59e0b", "#78350f")),
    ("ielts-speaking", 3, "雅思口语 7 分冲刺", "IELTS Speaking: Aim for Band 7", 8900,
     "三个部分的答题框架与真题演练。", "Answer frameworks for all three parts, with real questions.",
     ("#dc2626", "#7f1d1d")),
    ("business-english", 3, "职场商务英语", "Business English at Work", 6900,
     "邮件、会议与演讲中的地道表达。", "Natural English for e-mails, meetings and presentations.",
     ("#4f46e5", "#312e81")),
]

LESSON_TITLES = [
    ("课程介绍", "Welcome and overview"),
    ("核心概念", "Core ideas"),
    ("动手练习", "Hands-on practice"),
    ("总结与下一步", "Wrap-up and next steps"),
]

COUPONS = [
    {"code": "WELCOME10", "kind": "percent", "percent_off_bps": 1000, "per_user_limit": 1},
    {"code": "SAVE20", "kind": "fixed", "amount_off_fen": 2000, "min_amount_fen": 10000,
     "max_redemptions": 500, "per_user_limit": 1},
    {"code": "DESIGN30", "kind": "percent", "percent_off_bps": 3000, "per_user_limit": 1,
     "course_slugs": ["ui-design", "brand-identity", "ux-research"]},
]

# (slug, zh title, en title, price fen, course slugs)
BUNDLES = [
    ("python-web-stack", "Python 全栈套餐", "Python Full-Stack Bundle", 39900,
     ["python-basics", "flask-web", "postgres-internals"]),
    ("design-starter", "设计入门套餐", "Design Starter Bundle", 29900, ["ui-design", "brand-identity", "ux-research"]),
]

MEMBERSHIP_PLANS = [
    {"title_zh": "月度会员", "title_en": "Monthly membership", "price_fen": 9900, "period_days": 30,
     "pool_bps": 5000},
    {"title_zh": "年度会员", "title_en": "Yearly membership", "price_fen": 69900, "period_days": 365,
     "pool_bps": 5000},
]

DEMO_LEARNER = ("learner@example.com", "learner-pass", "Demo Learner")
# Logs in as the first instructor, to see earnings and statements.
DEMO_INSTRUCTOR = ("teacher@example.com", "teacher-pass", "林晓 Lin Xiao")
